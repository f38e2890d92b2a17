"""Ingestion: files → parsed documents → chunks → vectors → the index.

Idempotent and incremental: a document is identified by its ``id``; its content hash decides
whether it is re-embedded. One bad file never stops the batch.

One id, one source (``bot.kb.ledger``): a file whose id belongs to a document that came from
another file is refused (an ``IdTakenError`` naming that document and its file) unless the
caller asks to replace it; the same file again is an update. Every write records in the
ledger the file and the metadata it was read with, and applies an admin's overrides, so a
rebuild (``rebuild_jobs``) reads every document again exactly as it was ingested.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from bot.components.embeddings import Embedder
from bot.errors import (
    DocumentNotFoundError,
    DuplicateIdError,
    EmbeddingError,
    IngestError,
    KnowledgeBaseError,
    MetadataError,
)
from bot.kb.chunking import CHUNKER_VERSION, chunk_sections
from bot.kb.index import KnowledgeIndex, embedding_text
from bot.kb.ledger import (
    Conflict,
    IdTakenError,
    LedgerEntry,
    OverrideOutcome,
    OverrideStatus,
    apply_overrides,
    both_languages,
    json_values,
)
from bot.kb.lexical import Tokenizer
from bot.kb.loaders import iter_source_files, load_file
from bot.kb.models import IndexedDocument, ParsedDocument
from bot.settings import Settings

logger = logging.getLogger(__name__)

Status = Literal["added", "updated", "unchanged", "skipped", "failed"]


class FileOutcome(BaseModel):
    path: str
    status: Status
    doc_id: str | None = None
    chunks: int = 0
    error: str | None = None
    """Why the file failed, or (skipped) why it was left out."""
    conflict: Conflict | None = None
    """The document whose id the file claims (it came from another file); set when the file
    was refused for that."""
    derived: dict[str, str] = {}
    """Metadata the file did not give, derived from it (``loaders.derive_meta``)."""
    metadata_fields: list[str] = []
    """Failed for its metadata: every field missing or invalid (``MetadataError.fields``)."""


class IngestReport(BaseModel):
    outcomes: list[FileOutcome] = []

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def conflicts(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.conflict is not None]


Progress = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """One file to read, and the metadata given with it (over its own)."""

    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    fallback: dict[str, Any] | None = None
    """A document indexed before the ledger existed: its metadata as the registry holds it,
    used when the file alone does not give that document (no id, or another one)."""


class _ChangedMeanwhile(KnowledgeBaseError):
    pass


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
        replace: bool = False,
        on_file_done: Progress | None = None,
    ) -> IngestReport:
        """Ingest files and folders. ``overrides`` (metadata from the command line or the
        console) apply to every file; an ``id`` override is only allowed for a single file.
        ``replace``: a file may take the id of a document from another file (replacing it)."""
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
        metadata = json_values(overrides or {})
        jobs = [Job(path, metadata) for path in files]
        return self._run(
            jobs, report, force=force, replace=replace, rebuild=False, progress=on_file_done
        )

    def rebuild_jobs(self, knowledge_dir: Path) -> list[Job]:
        """What a rebuild reads: every document's recorded source with its recorded metadata
        (documents indexed before the ledger: their registered source), then the files of the
        knowledge folder that are no document's source yet."""
        ledger = self._index.ledger()
        jobs: dict[tuple[str, str], Job] = {}

        def add(job: Job) -> None:
            key = (str(job.path.resolve()), json.dumps(job.metadata, sort_keys=True))
            jobs.setdefault(key, job)

        for recorded in sorted(ledger.values(), key=lambda e: e.doc_id):
            if recorded.source is not None and Path(recorded.source).is_file():
                add(Job(Path(recorded.source), recorded.metadata))
        for doc in self._index.documents():
            entry = ledger.get(doc.meta.id)
            if (entry is None or entry.source is None) and Path(doc.source).is_file():
                add(Job(Path(doc.source), {}, fallback=doc.meta.model_dump(mode="json")))
        claimed = {path for path, _ in jobs}
        if knowledge_dir.is_dir():
            for path in iter_source_files([knowledge_dir]):
                if str(path.resolve()) not in claimed:
                    add(Job(path))
        return list(jobs.values())

    def rebuild(
        self, knowledge_dir: Path, *, force: bool = True, on_file_done: Progress | None = None
    ) -> IngestReport:
        """Read every document again as it was ingested (``rebuild_jobs``). A file of the
        knowledge folder whose id now belongs to a document from another file (replaced on
        purpose) is skipped, not failed."""
        jobs = self.rebuild_jobs(knowledge_dir)
        return self._run(
            jobs, IngestReport(), force=force, replace=False, rebuild=True, progress=on_file_done
        )

    def reindex(self, doc_id: str, overrides: Mapping[str, Any]) -> OverrideOutcome:
        """Index a document again from its source with ``overrides`` as the admin's changes
        (recorded in the ledger in the same write). Nothing is recorded unless the document
        is written."""
        entry = self._index.ledger_entry(doc_id)
        try:
            known = self._index.document(doc_id)
        except DocumentNotFoundError:
            if entry is not None and entry.source is None and not overrides:
                self._index.record(LedgerEntry(doc_id=doc_id))  # a removed document's, cleared
                return OverrideOutcome(OverrideStatus.APPLIED)
            return OverrideOutcome(OverrideStatus.NOT_FOUND)
        if entry is not None and entry.source is not None:
            job = Job(Path(entry.source), entry.metadata)
        else:
            job = Job(Path(known.source), {}, fallback=known.meta.model_dump(mode="json"))
        if not job.path.is_file():
            return OverrideOutcome(OverrideStatus.NO_SOURCE, known)
        max_bytes = int(self._settings.max_file_mb * 1_048_576)
        try:
            job, doc = self._load(job, max_bytes)
        except IngestError as exc:
            return OverrideOutcome(OverrideStatus.FAILED, known, exc.reason)
        if doc.meta.id != doc_id:
            reason = f"{job.path} now gives the id {doc.meta.id!r}"
            return OverrideOutcome(OverrideStatus.FAILED, known, reason)
        try:
            doc = apply_overrides(doc, overrides)
        except MetadataError as exc:
            return OverrideOutcome(OverrideStatus.INVALID, known, exc.reason)
        expected = entry.overrides if entry is not None else {}
        outcome = self._write(job, doc, known, entry, dict(overrides), expected, False, False)
        if outcome.status == "failed":
            return OverrideOutcome(OverrideStatus.FAILED, known, outcome.error)
        if outcome.status == "unchanged":
            return OverrideOutcome(OverrideStatus.UNCHANGED, known)
        return OverrideOutcome(OverrideStatus.APPLIED, self._index.document(doc_id))

    # -- the batch -----------------------------------------------------------------------

    def _load(self, job: Job, max_bytes: int) -> tuple[Job, ParsedDocument]:
        """Read a job's file; the job as it was read (a legacy job: with the metadata used)."""
        limits = {
            "max_bytes": max_bytes,
            "max_inflated_bytes": int(self._settings.max_inflated_mb * 1_048_576),
        }
        if job.fallback is None:
            return job, load_file(job.path, job.metadata, **limits)
        try:
            alone = load_file(job.path, None, **limits)
        except MetadataError:
            pass
        else:
            if alone.meta.id == job.fallback.get("id"):
                return Job(job.path), alone
        used = json_values(job.fallback)
        return Job(job.path, used), load_file(job.path, used, **limits)

    def _run(
        self,
        jobs: list[Job],
        report: IngestReport,
        *,
        force: bool,
        replace: bool,
        rebuild: bool,
        progress: Progress | None,
    ) -> IngestReport:
        def done(path: Path) -> None:
            if progress:
                progress(str(path))

        max_bytes = int(self._settings.max_file_mb * 1_048_576)
        ledger = self._index.ledger()
        parsed: list[tuple[Job, ParsedDocument]] = []
        for job in jobs:
            try:
                read, doc = self._load(job, max_bytes)
                entry = ledger.get(doc.meta.id)
                doc = apply_overrides(doc, entry.overrides if entry else {})
            except IngestError as exc:
                report.outcomes.append(_failed(job.path, exc))
            except Exception as exc:  # a loader bug must not stop the batch
                logger.exception("unexpected error loading %s", job.path)
                report.outcomes.append(
                    FileOutcome(
                        path=str(job.path),
                        status="failed",
                        error=f"could not be read ({type(exc).__name__}: {exc})",
                    )
                )
            else:
                parsed.append((read, doc))
                continue
            done(job.path)

        by_id: dict[str, list[tuple[Job, ParsedDocument]]] = defaultdict(list)
        for job, doc in parsed:
            by_id[doc.meta.id].append((job, doc))
        known = {d.meta.id: d for d in self._index.documents()}
        for doc_id, items in by_id.items():
            entry = ledger.get(doc_id)
            if rebuild:
                items = self._superseded(items, entry, known.get(doc_id), report, done)
            if len(items) > 1:
                names = ", ".join(str(d.source) for _, d in items)
                for _, doc in items:
                    report.outcomes.append(
                        _failed(
                            doc.source,
                            DuplicateIdError(
                                doc.source, f"id {doc_id!r} is used by several files: {names}"
                            ),
                        )
                    )
                    done(doc.source)
                continue
            for job, doc in items:
                overrides = entry.overrides if entry else {}
                report.outcomes.append(
                    self._write(
                        job, doc, known.get(doc_id), entry, overrides, overrides, force, replace
                    )
                )
                done(doc.source)
        return report

    @staticmethod
    def _superseded(
        items: list[tuple[Job, ParsedDocument]],
        entry: LedgerEntry | None,
        known: IndexedDocument | None,
        report: IngestReport,
        done: Callable[[Path], None],
    ) -> list[tuple[Job, ParsedDocument]]:
        """In a rebuild: the files for an id other than its recorded source are skipped."""
        recorded = entry.source if entry is not None and entry.source else None
        if recorded is None and known is not None:
            recorded = known.source
        if recorded is None:
            return items
        keep = [(job, doc) for job, doc in items if str(doc.source) == recorded]
        for _, doc in items:
            if str(doc.source) != recorded:
                report.outcomes.append(
                    FileOutcome(
                        path=str(doc.source),
                        status="skipped",
                        doc_id=doc.meta.id,
                        error=f"document {doc.meta.id!r} comes from {recorded}, which replaced "
                        "this file",
                    )
                )
                done(doc.source)
        return keep

    def _write(
        self,
        job: Job,
        doc: ParsedDocument,
        known: IndexedDocument | None,
        entry: LedgerEntry | None,
        overrides: dict[str, Any],
        expected: dict[str, Any],
        force: bool,
        replace: bool,
    ) -> FileOutcome:
        """Write one document (``overrides`` already applied to it) and its ledger entry.

        The race: another process may write the same id between this process's reads and its
        write. The decision is checked again under the index's write lock (``check``): a file
        from another source is refused then too, and if an admin changed the document's
        overrides meanwhile the write is refused ("changed meanwhile") rather than undoing
        that change."""
        source = str(doc.source)
        record = LedgerEntry(
            doc_id=doc.meta.id, source=source, metadata=job.metadata, overrides=overrides
        )

        def check(current: IndexedDocument | None, now: LedgerEntry | None) -> None:
            if (now.overrides if now else {}) != expected:
                raise _ChangedMeanwhile(both_languages("kb_changed_meanwhile", doc_id=doc.meta.id))
            if current is None or replace or current.source == source:
                return
            if now is not None and now.source == source:
                return
            raise IdTakenError(doc.source, Conflict.of(current))

        def failed(exc: KnowledgeBaseError | EmbeddingError) -> FileOutcome:
            conflict = exc.conflict if isinstance(exc, IdTakenError) else None
            error = exc.reason if isinstance(exc, IngestError) else str(exc)
            return FileOutcome(
                path=source, status="failed", doc_id=doc.meta.id, error=error, conflict=conflict
            )

        try:
            check(known, entry)
        except (IdTakenError, _ChangedMeanwhile) as exc:
            return failed(exc)
        settings = self._settings
        content_hash = doc.content_hash(
            f"v{CHUNKER_VERSION}:{settings.chunk_max_chars}:{settings.chunk_overlap_chars}"
        )
        if (
            known is not None
            and known.source == source
            and known.content_hash == content_hash
            and not force
        ):
            try:
                if entry != record:  # the same document, given its metadata another way
                    self._index.record(record, check)
            except KnowledgeBaseError as exc:
                return failed(exc)
            return FileOutcome(
                path=source, status="unchanged", doc_id=doc.meta.id, chunks=known.chunk_count
            )
        chunks = chunk_sections(
            doc.sections, settings.chunk_max_chars, settings.chunk_overlap_chars
        )
        texts = [embedding_text(doc.meta, c) for c in chunks]
        try:
            vectors = self._embed(texts)
            tokens = [self._tokenize(t) for t in texts]
            self._index.replace_document(
                doc, content_hash, chunks, vectors, tokens, self._now(), record, check
            )
        except (EmbeddingError, KnowledgeBaseError) as exc:
            return failed(exc)
        return FileOutcome(
            path=source,
            status="added" if known is None else "updated",
            doc_id=doc.meta.id,
            chunks=len(chunks),
            derived=doc.derived,
        )

    def _embed(self, texts: list[str]) -> Any:
        size = self._settings.embedding_batch_size
        parts = [
            self._embedder.embed_documents(texts[i : i + size]) for i in range(0, len(texts), size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)


def _failed(path: Path, exc: IngestError) -> FileOutcome:
    if isinstance(exc, MetadataError):  # which fields, and what the file gave: for channels
        fields = [f.split(".")[0] for f in exc.fields]
        return FileOutcome(
            path=str(path),
            status="failed",
            error=exc.reason,
            metadata_fields=fields,
            derived=exc.derived,
        )
    return FileOutcome(path=str(path), status="failed", error=exc.reason)
