"""Ingestion: files → parsed documents → chunks → vectors → the index.

Idempotent and incremental: a document is identified by its ``id``; its content hash decides
whether it is re-embedded. One bad file never stops the batch.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from bot.components.embeddings import Embedder
from bot.errors import DuplicateIdError, EmbeddingError, IngestError, KnowledgeBaseError
from bot.kb.chunking import CHUNKER_VERSION, chunk_sections
from bot.kb.index import KnowledgeIndex, embedding_text
from bot.kb.lexical import Tokenizer
from bot.kb.loaders import iter_source_files, load_file
from bot.kb.models import ParsedDocument
from bot.settings import Settings

logger = logging.getLogger(__name__)

Status = Literal["added", "updated", "unchanged", "failed"]


class FileOutcome(BaseModel):
    path: str
    status: Status
    doc_id: str | None = None
    chunks: int = 0
    error: str | None = None


class IngestReport(BaseModel):
    outcomes: list[FileOutcome] = []

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


Progress = Callable[[str], None]


class Ingestor:
    def __init__(
        self,
        index: KnowledgeIndex,
        embedder: Embedder,
        tokenizer: Tokenizer,
        settings: Settings,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._index = index
        self._embedder = embedder
        self._tokenize = tokenizer
        self._settings = settings
        self._now = now

    def expand(self, paths: Iterable[Path]) -> list[Path]:
        return list(iter_source_files(paths))

    def ingest(
        self,
        paths: Iterable[Path],
        overrides: Mapping[str, Any] | None = None,
        *,
        force: bool = False,
        on_file_done: Progress | None = None,
    ) -> IngestReport:
        """Ingest files and folders. ``overrides`` (metadata from the command line) apply to
        every file; an ``id`` override is only allowed for a single file."""
        report = IngestReport()
        files: list[Path] = []
        for path in paths:
            if not path.exists():
                report.outcomes.append(
                    FileOutcome(path=str(path), status="failed", error="no such file or folder")
                )
                continue
            files.extend(iter_source_files([path]))
        if overrides and overrides.get("id") and len(files) > 1:
            raise KnowledgeBaseError("--id can only be given when ingesting a single file")

        max_bytes = int(self._settings.max_file_mb * 1_048_576)
        parsed: list[ParsedDocument] = []
        for path in files:
            try:
                parsed.append(load_file(path, overrides, max_bytes=max_bytes))
            except IngestError as exc:
                report.outcomes.append(_failed(path, exc))
            except Exception as exc:  # a loader bug must not stop the batch
                logger.exception("unexpected error loading %s", path)
                report.outcomes.append(
                    FileOutcome(
                        path=str(path),
                        status="failed",
                        error=f"could not be read ({type(exc).__name__}: {exc})",
                    )
                )
            else:
                continue
            if on_file_done:
                on_file_done(str(path))

        by_id: dict[str, list[ParsedDocument]] = defaultdict(list)
        for doc in parsed:
            by_id[doc.meta.id].append(doc)
        known = {d.meta.id: d for d in self._index.documents()}
        for doc_id, docs in by_id.items():
            if len(docs) > 1:
                names = ", ".join(str(d.source) for d in docs)
                for doc in docs:
                    report.outcomes.append(
                        _failed(
                            doc.source,
                            DuplicateIdError(
                                doc.source, f"id {doc_id!r} is used by several files: {names}"
                            ),
                        )
                    )
                    if on_file_done:
                        on_file_done(str(doc.source))
                continue
            doc = docs[0]
            report.outcomes.append(self._write(doc, known.get(doc_id), force))
            if on_file_done:
                on_file_done(str(doc.source))
        return report

    def _write(self, doc: ParsedDocument, known: Any, force: bool) -> FileOutcome:
        settings = self._settings
        content_hash = doc.content_hash(
            f"v{CHUNKER_VERSION}:{settings.chunk_max_chars}:{settings.chunk_overlap_chars}"
        )
        if known is not None and known.content_hash == content_hash and not force:
            return FileOutcome(
                path=str(doc.source),
                status="unchanged",
                doc_id=doc.meta.id,
                chunks=known.chunk_count,
            )
        chunks = chunk_sections(
            doc.sections, self._settings.chunk_max_chars, self._settings.chunk_overlap_chars
        )
        texts = [embedding_text(doc.meta, c) for c in chunks]
        try:
            vectors = self._embed(texts)
            tokens = [self._tokenize(t) for t in texts]
            self._index.replace_document(doc, content_hash, chunks, vectors, tokens, self._now())
        except (EmbeddingError, KnowledgeBaseError) as exc:
            return FileOutcome(
                path=str(doc.source), status="failed", doc_id=doc.meta.id, error=str(exc)
            )
        return FileOutcome(
            path=str(doc.source),
            status="added" if known is None else "updated",
            doc_id=doc.meta.id,
            chunks=len(chunks),
        )

    def _embed(self, texts: list[str]) -> Any:
        import numpy as np

        size = self._settings.embedding_batch_size
        parts = [
            self._embedder.embed_documents(texts[i : i + size]) for i in range(0, len(texts), size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)


def _failed(path: Path, exc: IngestError) -> FileOutcome:
    return FileOutcome(path=str(path), status="failed", error=exc.reason)
