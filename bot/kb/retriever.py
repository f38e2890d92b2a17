"""Hybrid retrieval: dense (Chroma) + lexical (BM25), fused by reciprocal rank.

Filters: validity (expired and not-yet-effective documents are left out unless asked for),
region (a region keeps national documents and that region's), and language (a preference by
default, a hard filter with ``lang_only``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray

from bot.components.embeddings import Embedder
from bot.kb.index import ChunkRecord, KnowledgeIndex
from bot.kb.lexical import Bm25Index, Tokenizer, expand_pinyin
from bot.kb.models import IndexedDocument, Lang, Validity, detect_lang
from bot.kb.regions import applies, normalise_region
from bot.settings import Settings

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "lexical"]


@dataclass
class Hit:
    """One retrieved chunk with how it was found."""

    chunk_id: str
    doc: IndexedDocument
    heading: str
    text: str
    score: float
    dense_rank: int | None = None
    dense_score: float | None = None
    lexical_rank: int | None = None
    lexical_score: float | None = None

    @property
    def doc_id(self) -> str:
        return self.doc.meta.id

    @property
    def found_by(self) -> str:
        parts = [
            name
            for name, rank in (("dense", self.dense_rank), ("lexical", self.lexical_rank))
            if rank is not None
        ]
        return "+".join(parts)


@dataclass
class _Snapshot:
    fingerprint: str
    documents: dict[str, IndexedDocument]
    chunks: list[ChunkRecord]
    by_id: dict[str, int]
    bm25: Bm25Index
    chunk_doc: list[str] = field(default_factory=list)


class Retriever:
    def __init__(
        self,
        index: KnowledgeIndex,
        embedder: Embedder,
        tokenizer: Tokenizer,
        settings: Settings,
        clock: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self._index = index
        self._embedder = embedder
        self._tokenize = tokenizer
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._checked_at = 0.0
        self._sentence_vectors: dict[str, NDArray[np.float32]] = {}

    SENTENCE_VECTORS = 20_000
    """Sentence embeddings kept for ``similarities`` (a document's sentences are embedded
    once, on the first question that reads them: about 50 sentences, tens of milliseconds)."""

    def similarities(self, query: str, sentences: Sequence[str]) -> list[float]:
        """The encoder's cosine similarity of ``query`` and each of ``sentences`` (the
        composer's lead ranker reads it; every agent on this index shares the cache)."""
        if not sentences:
            return []
        cache = self._sentence_vectors
        found = {s: cache.get(s) for s in sentences}  # another thread may clear the cache
        missing = [s for s, vector in found.items() if vector is None]
        if missing:
            if len(cache) + len(missing) > self.SENTENCE_VECTORS:
                cache.clear()
            rows = np.asarray(self._embedder.embed_documents(missing), dtype=np.float32)
            new = dict(zip(missing, rows, strict=True))
            cache.update(new)
            found.update(new)
        query_vector = np.asarray(self._embedder.embed_query(query), dtype=np.float32)
        matrix = np.stack([v for v in (found[s] for s in sentences) if v is not None])
        return [float(v) for v in matrix @ query_vector.reshape(-1)]

    def refresh(self, force: bool = False) -> None:
        """Reload documents and the lexical index if the index changed since the last look
        (by this process or another: ``KnowledgeIndex.reading`` catches up with the others)."""
        with self._lock:
            now = time.monotonic()
            if (
                not force
                and self._snapshot is not None
                and now - self._checked_at < self._settings.index_refresh_s
            ):
                return
            with self._index.reading():
                listed = self._index.documents()
                fingerprint = self._index.fingerprint(listed)
                self._checked_at = now
                if (
                    not force
                    and self._snapshot is not None
                    and self._snapshot.fingerprint == fingerprint
                ):
                    return
                chunks, bm25 = self._load_chunks(fingerprint, {d.version for d in listed})
            documents = {d.meta.id: d for d in listed}
            self._snapshot = _Snapshot(
                fingerprint=fingerprint,
                documents=documents,
                chunks=chunks,
                by_id={c.chunk_id: i for i, c in enumerate(chunks)},
                bm25=bm25,
                chunk_doc=[c.doc_id for c in chunks],
            )

    def _load_chunks(
        self, fingerprint: str, versions: set[str]
    ) -> tuple[list[ChunkRecord], Bm25Index]:
        """The active chunks (text and tokens) and their lexical index, from a local cache
        keyed by the index fingerprint when there is one: reading the chunks from Chroma
        takes ~0.5 s, building the index ~0.1 s."""
        cache = self._settings.data_dir / "cache" / f"chunks-{self._index.model_key}.pickle"
        try:
            with cache.open("rb") as handle:
                cached_fingerprint, records, bm25 = pickle.load(handle)
            if cached_fingerprint == fingerprint and isinstance(bm25, Bm25Index):
                return cast(list[ChunkRecord], records), bm25
        except (OSError, pickle.PickleError, EOFError, ValueError, TypeError, AttributeError):
            pass
        records = self._index.chunks(versions)
        bm25 = Bm25Index([c.tokens for c in records])
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(f".{os.getpid()}.tmp")
            with partial.open("wb") as handle:
                pickle.dump((fingerprint, records, bm25), handle, protocol=pickle.HIGHEST_PROTOCOL)
            partial.replace(cache)
        except OSError:
            logger.warning("could not write the chunk cache %s", cache)
        return records, bm25

    def vocabulary(self) -> Container[str]:
        """Every term of the indexed corpus (words, "~" + Chinese bigrams)."""
        self.refresh()
        assert self._snapshot is not None
        return self._snapshot.bm25.vocabulary

    def weighted_terms(self, text: str) -> dict[str, float]:
        """The text's corpus terms with their IDF weights (for ranking sentences)."""
        self.refresh()
        assert self._snapshot is not None
        bm25 = self._snapshot.bm25
        return {
            term: bm25.idf(term)
            for term in self._tokenize.query_terms(text, bm25.vocabulary)
            if bm25.idf(term) > 0
        }

    def doc_chunks(self, doc_id: str) -> list[ChunkRecord]:
        """A document's active chunks in order (from memory)."""
        self.refresh()
        assert self._snapshot is not None
        return [c for c in self._snapshot.chunks if c.doc_id == doc_id]

    def documents(self) -> dict[str, IndexedDocument]:
        self.refresh()
        assert self._snapshot is not None
        return self._snapshot.documents

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        lang: Lang | None = None,
        lang_only: bool = False,
        region: str | None = None,
        include_inactive: bool = False,
        mode: Mode = "hybrid",
        today: dt.date | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``. ``lang`` defaults to the query's language."""
        self.refresh()
        snap = self._snapshot
        assert snap is not None
        k = k or self._settings.retrieval_k
        today = today or self._clock()
        preferred: Lang = lang or detect_lang(query)
        region_code = normalise_region(region) if region else None

        allowed = {
            doc_id: doc
            for doc_id, doc in snap.documents.items()
            if (include_inactive or doc.validity(today) is Validity.ACTIVE)
            and applies(doc.meta.region, region_code)
            and (not lang_only or doc.meta.lang == preferred)
        }
        if not allowed or not query.strip():
            return []
        n = self._settings.retrieval_candidates

        dense: list[tuple[str, float]] = []
        if mode in ("hybrid", "dense"):
            vector = self._embedder.embed_query(expand_pinyin(query))
            versions = sorted(d.version for d in allowed.values())
            dense = [
                (cid, s)
                for cid, s in self._index.dense_query(vector, n, versions)
                if cid in snap.by_id
            ]
        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "lexical"):
            scores = snap.bm25.scores(self._tokenize.query_terms(query, snap.bm25.vocabulary))
            mask = np.array([doc_id in allowed for doc_id in snap.chunk_doc], dtype=bool)
            scores = np.where(mask, scores, 0.0)
            top = np.argsort(-scores, kind="stable")[:n]
            lexical = [(snap.chunks[i].chunk_id, float(scores[i])) for i in top if scores[i] > 0]

        hits: dict[str, Hit] = {}

        def hit_for(chunk_id: str) -> Hit:
            if chunk_id not in hits:
                record = snap.chunks[snap.by_id[chunk_id]]
                hits[chunk_id] = Hit(
                    chunk_id=chunk_id,
                    doc=snap.documents[record.doc_id],
                    heading=record.heading,
                    text=record.text,
                    score=0.0,
                )
            return hits[chunk_id]

        for rank, (cid, score) in enumerate(dense, start=1):
            hit = hit_for(cid)
            hit.dense_rank, hit.dense_score = rank, score
        for rank, (cid, score) in enumerate(lexical, start=1):
            hit = hit_for(cid)
            hit.lexical_rank, hit.lexical_score = rank, score

        rrf_k = self._settings.rrf_k
        for hit in hits.values():
            if mode == "dense":
                hit.score = hit.dense_score or 0.0
            elif mode == "lexical":
                hit.score = hit.lexical_score or 0.0
            else:
                hit.score = sum(
                    weight / (rrf_k + rank)
                    for rank, weight in (
                        (hit.dense_rank, self._settings.dense_weight),
                        (hit.lexical_rank, self._settings.lexical_weight),
                    )
                    if rank is not None
                )
                if hit.doc.meta.lang == preferred:
                    hit.score *= 1.0 + self._settings.lang_boost
                if region_code is not None and hit.doc.meta.region == region_code:
                    hit.score *= 1.1
        ranked = sorted(hits.values(), key=lambda h: (-h.score, h.chunk_id))
        return ranked[:k]
