"""``KnowledgeBase``: the one object the CLI, the agent and the channels use."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bot.components.embeddings import Embedder, build_embedder
from bot.components.vectorstore import open_chroma
from bot.kb.index import INDEX_LOCK_FILE, IndexLock, KnowledgeIndex
from bot.kb.ingest import Ingestor, IngestReport, Progress
from bot.kb.ledger import (
    OVERRIDABLE,
    Conflict,
    OverrideOutcome,
    OverrideStatus,
    json_values,
)
from bot.kb.lexical import Tokenizer
from bot.kb.models import IndexedDocument, Validity
from bot.kb.retriever import Hit, Retriever
from bot.settings import Settings

__all__ = ["Conflict", "KbStats", "KnowledgeBase", "OverrideOutcome", "OverrideStatus"]

logger = logging.getLogger(__name__)


class KbStats(BaseModel):
    embedding_model: str
    store: str
    documents: int
    chunks: int
    by_lang: dict[str, int]
    by_validity: dict[str, int]
    by_region: dict[str, int]
    by_category: dict[str, int]


class KnowledgeBase:
    def __init__(
        self,
        settings: Settings,
        index: KnowledgeIndex,
        embedder: Embedder,
        tokenizer: Tokenizer,
        clock: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.settings = settings
        self.index = index
        self.embedder = embedder
        self.clock = clock
        self.retriever = Retriever(index, embedder, tokenizer, settings, clock)
        self.ingestor = Ingestor(index, embedder, tokenizer, settings)

    @classmethod
    def open(
        cls, settings: Settings, clock: Callable[[], dt.date] = dt.date.today
    ) -> KnowledgeBase:
        embedder = build_embedder(settings)
        if settings.chroma_url is None:  # embedded: shared by processes through a lock file
            index = KnowledgeIndex(
                lambda: open_chroma(settings, own_state=True),
                embedder.key,
                IndexLock(settings.chroma_path / INDEX_LOCK_FILE),
            )
        else:
            client = open_chroma(settings)
            index = KnowledgeIndex(lambda: client, embedder.key)
        tokenizer = Tokenizer(settings.data_dir / "cache")
        return cls(settings, index, embedder, tokenizer, clock)

    def prefetch(self) -> None:
        """Start loading, on two background threads, what a new process's first question
        waits for in native code: the encoder's weights (with a first embedding) and the
        vector index (``KnowledgeIndex.warm``). Both release the GIL, so a one-shot command
        (``gradguide ask``) builds its agent meanwhile; measured here, each took about
        0.3 s of the first answer. A failure is only logged: the question meets it again
        and reports it."""

        def quietly(work: Callable[[], object]) -> None:
            try:
                work()
            except Exception:  # the question that follows reports it
                logger.debug("prefetch failed", exc_info=True)

        for name, work in (
            ("encoder", lambda: self.embedder.embed_query("warm up")),
            ("vectors", self.index.warm),
        ):
            threading.Thread(
                target=quietly, args=(work,), name=f"gradguide-prefetch-{name}", daemon=True
            ).start()

    # -- admin ---------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[Path],
        overrides: Mapping[str, Any] | None = None,
        *,
        force: bool = False,
        replace: bool = False,
        on_file_done: Progress | None = None,
    ) -> IngestReport:
        """Add or update documents; a file whose id belongs to a document from another file
        is refused (its outcome names that document) unless ``replace``."""
        report = self.ingestor.ingest(
            paths, overrides, force=force, replace=replace, on_file_done=on_file_done
        )
        self.retriever.refresh(force=True)
        return report

    def rebuild_sources(self) -> list[Path]:
        """What ``rebuild`` re-reads: every document's recorded source, and the knowledge
        folder's other files."""
        return [job.path for job in self.ingestor.rebuild_jobs(self.settings.knowledge_dir)]

    def rebuild(self, on_file_done: Progress | None = None) -> IngestReport:
        """Re-read and re-embed every document as it was ingested (its source, the metadata
        it was given, an admin's overrides), then drop orphaned chunks."""
        report = self.ingestor.rebuild(self.settings.knowledge_dir, on_file_done=on_file_done)
        self.index.collect_garbage()
        self.retriever.refresh(force=True)
        return report

    def ensure_built(self, on_file_done: Progress | None = None) -> IngestReport | None:
        """Build the index on first use: the knowledge folder, and (a new embedding model on
        a store that knows documents) every recorded document as it was ingested."""
        if self.index.documents():
            return None
        report = self.ingestor.rebuild(
            self.settings.knowledge_dir, force=False, on_file_done=on_file_done
        )
        self.retriever.refresh(force=True)
        return report

    def conflict(self, doc_id: str, source: Path) -> Conflict | None:
        """The document that a file at ``source`` giving ``doc_id`` would replace: one with
        that id from another file (None: no such document, or the same file)."""
        doc, entry = self.index.current(doc_id)
        if doc is None or doc.source == str(source.resolve()):
            return None
        if entry is not None and entry.source == str(source.resolve()):
            return None
        return Conflict.of(doc)

    def remove(self, doc_id: str) -> IndexedDocument:
        doc = self.index.remove_document(doc_id)
        self.retriever.refresh(force=True)
        return doc

    # -- an admin's changes to a document ---------------------------------------------------

    def overrides(self, doc_id: str) -> dict[str, Any]:
        """An admin's changes to a document (JSON values; empty: none)."""
        entry = self.index.ledger_entry(doc_id)
        return dict(entry.overrides) if entry is not None else {}

    def all_overrides(self) -> dict[str, dict[str, Any]]:
        return {i: dict(e.overrides) for i, e in self.index.ledger().items() if e.overrides}

    def set_overrides(self, doc_id: str, changes: Mapping[str, Any]) -> OverrideOutcome:
        """Change metadata fields of a document (a None value drops that field's change) and
        index it again from its source; the change is kept in the ledger and applied on every
        (re)index until cleared. Nothing is kept unless the document could be written."""
        unknown = sorted(set(changes) - set(OVERRIDABLE))
        if unknown:
            return OverrideOutcome(OverrideStatus.INVALID, reason=f"cannot change {unknown}")
        merged = self.overrides(doc_id)
        for name in changes:
            merged.pop(name, None)
        merged.update(json_values({k: v for k, v in changes.items() if v is not None}))
        return self._reindex(doc_id, merged)

    def expire(self, doc_id: str) -> OverrideOutcome:
        """Expire a document from yesterday (it is no longer cited)."""
        return self.set_overrides(doc_id, {"expires": self.clock() - dt.timedelta(days=1)})

    def clear_overrides(self, doc_id: str) -> OverrideOutcome:
        """Undo every change an admin made to a document: its file's metadata holds again."""
        return self._reindex(doc_id, {})

    def _reindex(self, doc_id: str, overrides: dict[str, Any]) -> OverrideOutcome:
        outcome = self.ingestor.reindex(doc_id, overrides)
        self.retriever.refresh(force=True)
        return outcome

    def documents(self) -> list[IndexedDocument]:
        return self.index.documents()

    def document(self, doc_id: str) -> IndexedDocument:
        return self.index.document(doc_id)

    def chunks_of(self, doc_id: str) -> list[tuple[str, str]]:
        doc = self.index.document(doc_id)
        return [(c.heading, c.text) for c in self.index.chunks({doc.version})]

    def stats(self) -> KbStats:
        docs = self.index.documents()
        today = self.clock()
        return KbStats(
            embedding_model=self.embedder.key,
            store=self.settings.chroma_url or f"embedded: {self.settings.chroma_path}",
            documents=len(docs),
            chunks=sum(d.chunk_count for d in docs),
            by_lang=dict(Counter(d.meta.lang for d in docs)),
            by_validity=dict(Counter(d.validity(today).value for d in docs)),
            by_region=dict(Counter(d.meta.region for d in docs)),
            by_category=dict(Counter(d.meta.topics[0] if d.meta.topics else "-" for d in docs)),
        )

    def validity(self, doc: IndexedDocument) -> Validity:
        return doc.validity(self.clock())

    # -- retrieval -----------------------------------------------------------------------

    def search(self, query: str, **options: Any) -> list[Hit]:
        return self.retriever.search(query, **options)
