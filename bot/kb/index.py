"""The index: chunks with vectors and a registry of documents, both in Chroma.

Two collections per embedding model, so vectors of different models never mix:
``gg-chunks-<model>`` (one record per chunk) and ``gg-docs-<model>`` (one record per document:
its metadata, content hash and *active version*). A third, ``gg-ledger``, is shared by every
model: what each document was ingested from and with, and an admin's changes (``ledger.py``).

Replacing a document is atomic for readers: the new chunks are written under a new version,
then the registry record is flipped to that version (a single upsert), then the old chunks
are deleted. Readers only ever see chunks of the active version, so a document is never
missing and never doubled, and a crash part-way leaves only orphans that
``collect_garbage`` removes.

Several processes share one index (the bot, the console, ``gradguide kb``): see
``KnowledgeIndex`` for how they stay consistent on embedded Chroma.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from bot.components.embeddings import Vectors
from bot.components.vectorstore import release_chroma
from bot.errors import DocumentNotFoundError, IndexUnavailableError
from bot.kb.ledger import LEDGER_COLLECTION, LedgerEntry
from bot.kb.models import Chunk, DocMeta, IndexedDocument, ParsedDocument

T = TypeVar("T")

WriteCheck = Callable[[IndexedDocument | None, LedgerEntry | None], None]
"""Called under the write lock with the document and ledger entry of the id being written;
raises to refuse the write."""

INDEX_LOCK_FILE = "gradguide-index.lock"
"""In the embedded Chroma directory: see ``IndexLock``."""
RELEASE_AFTER_S = 5.0
"""A replaced embedded client is freed at the first reopening at least this long after: no
call that took its collections before the replacement can still be running (they take
milliseconds)."""


class ChunkRecord:
    """A stored chunk (without its vector)."""

    __slots__ = ("chunk_id", "doc_id", "heading", "index", "text", "tokens", "version")

    def __init__(
        self,
        chunk_id: str,
        doc_id: str,
        version: str,
        index: int,
        heading: str,
        text: str,
        tokens: list[str],
    ) -> None:
        self.chunk_id = chunk_id
        self.doc_id = doc_id
        self.version = version
        self.index = index
        self.heading = heading
        self.text = text
        self.tokens = tokens


def _guard(action: Callable[[], T]) -> T:
    """Run a Chroma call; connection failures become ``IndexUnavailableError``."""
    try:
        return action()
    except (ConnectionError, OSError) as exc:
        raise IndexUnavailableError(f"the vector store is unavailable: {exc}") from exc
    except Exception as exc:
        name = type(exc).__name__
        if "Connect" in name or "Timeout" in name or "connect" in str(exc).lower():
            raise IndexUnavailableError(f"the vector store is unavailable: {exc}") from exc
        raise


def version_of(doc_id: str, content_hash: str) -> str:
    return f"{doc_id}@{content_hash[:16]}"


def embedding_text(meta: DocMeta, chunk: Chunk) -> str:
    """The text that is embedded and tokenized: title and heading path give a chunk context."""
    headings = [h for h in chunk.headings if h != meta.title]
    return "\n".join([meta.title, *([" > ".join(headings)] if headings else []), chunk.text])


class IndexLock:
    """A lock file (``flock``) next to an embedded index that also holds the index's
    *generation*, a token that every write changes. Shared while reading, exclusive while
    writing; each hold opens the file anew, so two threads of one process exclude each other
    as two processes do, and the kernel releases the lock of a process that dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def hold(self, *, exclusive: bool) -> Iterator[int]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise IndexUnavailableError(f"cannot open the index lock {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def generation(fd: int) -> str:
        return os.pread(fd, 64, 0).decode("ascii", "replace").strip()

    @staticmethod
    def advance(fd: int) -> str:
        """A new generation (under the exclusive lock)."""
        token = uuid.uuid4().hex
        os.ftruncate(fd, 0)
        os.pwrite(fd, token.encode("ascii"), 0)
        return token


class KnowledgeIndex:
    """The index on one Chroma: embedded (``lock`` given) or a server (``lock`` None).

    The race, on embedded Chroma shared by processes (the bot, the console, ``gradguide kb``).
    Each process keeps its own copy of a collection's vectors (HNSW) in memory, brought up to
    date from Chroma's write log only the first time that process touches the collection;
    the metadata is in SQLite, which every process reads current. A query's ``where`` filter
    runs in SQLite, then its ids are looked up among the in-memory vectors. So after another
    process adds chunks, a long-running process reads their version from the registry,
    filters to ids its vectors have never seen, and every dense query fails ("Error finding
    id") until it restarts. And two processes writing at once interleave their stage /
    switch / purge steps.

    How it is handled: a lock and a reopened client. ``IndexLock`` is a lock file holding a
    *generation*. Every write (``replace_document``, ``remove_document``, ``collect_garbage``)
    holds it exclusively, so processes write one at a time, and changes the generation before
    writing anything (a writer that dies part-way still tells the others). The retriever reads
    the registry (its refresh, every ``GRADGUIDE_INDEX_REFRESH_S``) inside ``reading()``,
    under the shared lock, so no write is under way meanwhile. Both compare the generation
    with the one this index last saw; if another process wrote since, the client is replaced
    by a new one with state of its own (``open_client``), whose vectors are loaded from disk
    when first used, which is after this point, so they hold every chunk the registry lists
    now. A snapshot so taken names only versions whose vectors this process holds, so its
    queries never fail however long it is used; the next refresh catches up. A Chroma server
    is one process with one copy of the vectors: no lock, no reopening.
    """

    def __init__(
        self,
        open_client: Callable[[], ClientAPI],
        model_key: str,
        lock: IndexLock | None = None,
    ) -> None:
        self.model_key = model_key
        self._open_client = open_client
        self._lock = lock
        self._client: ClientAPI | None = None
        self._retired: list[tuple[float, ClientAPI]] = []  # (when replaced, client)
        self._held = threading.local()  # this thread's hold on the lock: None, shared, exclusive
        self._generation = ""
        if lock is None:
            self._connect()
            return
        with lock.hold(exclusive=True) as fd:  # one process creates the collections
            self._generation = lock.generation(fd)
            self._connect()

    def _connect(self) -> None:
        """A new client (with state of its own, when embedded) and its collections."""
        client = self._open_client()
        model_key = self.model_key

        def open_collections() -> tuple[Collection, Collection, Collection]:
            chunks = client.get_or_create_collection(
                f"gg-chunks-{model_key}",
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedding_model": model_key},
            )
            registry = client.get_or_create_collection(
                f"gg-docs-{model_key}",
                embedding_function=None,
                metadata={"embedding_model": model_key},
            )
            ledger = client.get_or_create_collection(  # one for every model: see ledger.py
                LEDGER_COLLECTION, embedding_function=None
            )
            return chunks, registry, ledger

        self._chunks, self._registry, self._ledger = _guard(open_collections)
        if self._client is not None:  # replaced: freed once no call can still be using it
            now = time.monotonic()
            self._retired.append((now, self._client))
            for retired_at, old in self._retired:
                if now - retired_at > RELEASE_AFTER_S:
                    release_chroma(old)
            self._retired = [(at, c) for at, c in self._retired if now - at <= RELEASE_AFTER_S]
        self._client = client

    @contextmanager
    def _holding(self, mode: Literal["shared", "exclusive"]) -> Iterator[None]:
        """Hold the lock in ``mode`` (nothing on a server, or if this thread already holds
        it); on entry, catch up with other processes' writes; before a write, announce it."""
        held = getattr(self._held, "mode", None)
        if held == "shared" and mode == "exclusive":
            raise RuntimeError("a write inside reading() would need to upgrade the lock")
        if self._lock is None or held is not None:
            yield
            return
        with self._lock.hold(exclusive=mode == "exclusive") as fd:
            self._held.mode = mode
            try:
                generation = self._lock.generation(fd)
                if generation != self._generation:  # another process wrote since
                    self._connect()
                    self._generation = generation
                if mode == "exclusive":
                    self._generation = self._lock.advance(fd)
                yield
            finally:
                self._held.mode = None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A consistent view for several reads: no write starts or ends inside it, and the
        client holds every write made before it (see the class docstring)."""
        with self._holding("shared"):
            yield

    # -- reading -------------------------------------------------------------------------

    def documents(self) -> list[IndexedDocument]:
        result = _guard(lambda: self._registry.get(include=["metadatas"]))
        docs = [_doc_from_record(m) for m in result["metadatas"] or []]
        return sorted(docs, key=lambda d: d.meta.id)

    def document(self, doc_id: str) -> IndexedDocument:
        result = _guard(lambda: self._registry.get(ids=[doc_id], include=["metadatas"]))
        records = result["metadatas"] or []
        if not records:
            raise DocumentNotFoundError(doc_id)
        return _doc_from_record(records[0])

    def ledger(self) -> dict[str, LedgerEntry]:
        """Every ledger entry, by document id (including removed documents' overrides)."""
        result = _guard(lambda: self._ledger.get(include=["metadatas"]))
        entries = [LedgerEntry.load(str(m["entry"])) for m in result["metadatas"] or []]
        return {e.doc_id: e for e in entries}

    def ledger_entry(self, doc_id: str) -> LedgerEntry | None:
        result = _guard(lambda: self._ledger.get(ids=[doc_id], include=["metadatas"]))
        records = result["metadatas"] or []
        return LedgerEntry.load(str(records[0]["entry"])) if records else None

    def current(self, doc_id: str) -> tuple[IndexedDocument | None, LedgerEntry | None]:
        """The document and its ledger entry, either of which may be missing."""
        try:
            doc: IndexedDocument | None = self.document(doc_id)
        except DocumentNotFoundError:
            doc = None
        return doc, self.ledger_entry(doc_id)

    def record(self, entry: LedgerEntry, check: WriteCheck | None = None) -> None:
        """Write a ledger entry (an entry with nothing left to remember is deleted);
        ``check`` as for ``replace_document``."""
        with self._holding("exclusive"):
            if check is not None:
                check(*self.current(entry.doc_id))
            if entry.source is None and not entry.overrides:
                _guard(lambda: self._ledger.delete(ids=[entry.doc_id]))
                return
            metadata: Any = {"entry": entry.dump()}
            _guard(
                lambda: self._ledger.upsert(
                    ids=[entry.doc_id],
                    embeddings=np.ones((1, 1), dtype=np.float32),
                    metadatas=[metadata],
                    documents=[entry.doc_id],
                )
            )

    @staticmethod
    def fingerprint(documents: Sequence[IndexedDocument]) -> str:
        """Changes whenever any document is added, replaced or removed."""
        versions = sorted(d.version for d in documents)
        return hashlib.sha256("\n".join(versions).encode()).hexdigest()

    def chunks(self, versions: set[str] | None = None) -> list[ChunkRecord]:
        """Stored chunks, restricted to the given versions (default: all active ones)."""
        if versions is None:
            versions = {d.version for d in self.documents()}
        result = _guard(lambda: self._chunks.get(include=["metadatas", "documents"]))
        records: list[ChunkRecord] = []
        for chunk_id, meta, text in zip(
            result["ids"], result["metadatas"] or [], result["documents"] or [], strict=True
        ):
            if meta["version"] not in versions:
                continue
            records.append(
                ChunkRecord(
                    chunk_id=chunk_id,
                    doc_id=str(meta["doc_id"]),
                    version=str(meta["version"]),
                    index=int(str(meta["chunk_index"])),
                    heading=str(meta["heading"]),
                    text=text,
                    tokens=str(meta["tokens"]).split(" ") if meta["tokens"] else [],
                )
            )
        return sorted(records, key=lambda r: (r.doc_id, r.index))

    def count_chunks(self) -> int:
        return int(_guard(self._chunks.count))

    def warm(self) -> None:
        """Load this process's copy of the vectors now: Chroma reads a collection's vector
        index on the first query that touches it (about 0.3 s for the bundled corpus), so
        this runs one, with a stored chunk's own vector. Under the shared lock like every
        read, so the copy holds every write made before it (see the class docstring)."""
        with self.reading():
            sample = _guard(lambda: self._chunks.get(limit=1, include=["embeddings"]))
            stored = sample["embeddings"]
            if stored is None or len(stored) == 0:
                return
            vector = np.asarray(stored[0], dtype=np.float32)
            _guard(
                lambda: self._chunks.query(
                    query_embeddings=vector[None, :], n_results=1, include=["distances"]
                )
            )

    def dense_query(
        self, vector: Vectors, n_results: int, versions: Sequence[str]
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the nearest chunks among the given versions."""
        if not versions:
            return []
        where: Any = (
            {"version": versions[0]} if len(versions) == 1 else {"version": {"$in": list(versions)}}
        )
        result = _guard(
            lambda: self._chunks.query(
                query_embeddings=vector[None, :],
                n_results=n_results,
                where=where,
                include=["distances"],
            )
        )
        ids = result["ids"][0] if result["ids"] else []
        distances = result["distances"][0] if result["distances"] else []
        return [(cid, 1.0 - float(d)) for cid, d in zip(ids, distances, strict=True)]

    # -- writing -------------------------------------------------------------------------

    def stage_chunks(
        self,
        parsed: ParsedDocument,
        content_hash: str,
        chunks: Sequence[Chunk],
        vectors: Vectors,
        tokens: Sequence[Sequence[str]],
    ) -> str:
        """Write a new version's chunks; readers do not see them until ``activate``."""
        doc_id = parsed.meta.id
        version = version_of(doc_id, content_hash)
        if not chunks:
            return version
        ids = [f"{version}#{c.index}" for c in chunks]
        meta = parsed.meta
        carried = {  # every chunk carries its document's metadata
            "doc_id": doc_id,
            "version": version,
            "title": meta.title,
            "lang": meta.lang,
            "authority": meta.authority,
            "doc_number": meta.doc_number or "",
            "issued": meta.issued.isoformat(),
            "effective_from": meta.starts.isoformat(),
            "expires": meta.expires.isoformat() if meta.expires else "",
            "region": meta.region,
            "topics": ",".join(meta.topics),
            "source_url": meta.source_url or "",
        }
        metadatas: list[Any] = [
            {**carried, "chunk_index": c.index, "heading": c.heading_path, "tokens": " ".join(t)}
            for c, t in zip(chunks, tokens, strict=True)
        ]
        with self._holding("exclusive"):
            _guard(
                lambda: self._chunks.upsert(
                    ids=ids,
                    embeddings=vectors,
                    documents=[c.text for c in chunks],
                    metadatas=metadatas,
                )
            )
        return version

    def activate(
        self, parsed: ParsedDocument, content_hash: str, chunk_count: int, now: dt.datetime
    ) -> IndexedDocument:
        """Point the registry at the staged version (the atomic step)."""
        doc = IndexedDocument(
            meta=parsed.meta,
            content_hash=content_hash,
            version=version_of(parsed.meta.id, content_hash),
            chunk_count=chunk_count,
            source=str(parsed.source),
            ingested_at=now,
        )
        record: Any = _doc_to_record(doc)
        with self._holding("exclusive"):
            _guard(
                lambda: self._registry.upsert(
                    ids=[doc.meta.id],
                    embeddings=np.ones((1, 1), dtype=np.float32),
                    metadatas=[record],
                    documents=[doc.meta.title],
                )
            )
        return doc

    def purge_other_versions(self, doc_id: str, keep_version: str) -> None:
        where: Any = {"$and": [{"doc_id": doc_id}, {"version": {"$ne": keep_version}}]}
        with self._holding("exclusive"):
            _guard(lambda: self._chunks.delete(where=where))

    def replace_document(
        self,
        parsed: ParsedDocument,
        content_hash: str,
        chunks: Sequence[Chunk],
        vectors: Vectors,
        tokens: Sequence[Sequence[str]],
        now: dt.datetime,
        entry: LedgerEntry | None = None,
        check: WriteCheck | None = None,
    ) -> IndexedDocument:
        """Stage, record ``entry`` in the ledger, switch, purge: no other writer between.

        ``check`` sees the document and ledger entry as they are now, under the lock, and
        raises to refuse the write (nothing is written): a decision taken on an earlier
        read (may this file take this id?) holds against a process that wrote meanwhile.
        The ledger is written before the switch: a crash between the two leaves the ledger
        naming the new source, which the next rebuild then indexes, never the reverse.
        """
        with self._holding("exclusive"):
            if check is not None:
                check(*self.current(parsed.meta.id))
            version = self.stage_chunks(parsed, content_hash, chunks, vectors, tokens)
            if entry is not None:
                self.record(entry)
            doc = self.activate(parsed, content_hash, len(chunks), now)
            self.purge_other_versions(parsed.meta.id, version)
        return doc

    def remove_document(self, doc_id: str) -> IndexedDocument:
        """Remove a document; its ledger entry keeps only an admin's overrides."""
        with self._holding("exclusive"):
            doc = self.document(doc_id)
            _guard(lambda: self._registry.delete(ids=[doc_id]))
            _guard(lambda: self._chunks.delete(where={"doc_id": doc_id}))
            entry = self.ledger_entry(doc_id)
            if entry is not None:
                self.record(LedgerEntry(doc_id=doc_id, overrides=entry.overrides))
        return doc

    def collect_garbage(self) -> int:
        """Delete chunks of versions that are not active (left by an interrupted write)."""
        with self._holding("exclusive"):  # not another process's staged, unswitched chunks
            active = {d.version for d in self.documents()}
            result = _guard(lambda: self._chunks.get(include=["metadatas"]))
            orphans = [
                cid
                for cid, meta in zip(result["ids"], result["metadatas"] or [], strict=True)
                if meta["version"] not in active
            ]
            if orphans:
                _guard(lambda: self._chunks.delete(ids=orphans))
        return len(orphans)


def _doc_to_record(doc: IndexedDocument) -> dict[str, str | int]:
    meta = doc.meta.model_dump(mode="json")
    return {
        "meta": json.dumps(meta, ensure_ascii=False),
        "doc_id": doc.meta.id,
        "lang": doc.meta.lang,
        "region": doc.meta.region,
        "content_hash": doc.content_hash,
        "version": doc.version,
        "chunk_count": doc.chunk_count,
        "source": doc.source,
        "ingested_at": doc.ingested_at.isoformat(),
    }


def _doc_from_record(record: Any) -> IndexedDocument:
    return IndexedDocument(
        meta=DocMeta.model_validate(json.loads(record["meta"])),
        content_hash=record["content_hash"],
        version=record["version"],
        chunk_count=int(record["chunk_count"]),
        source=record["source"],
        ingested_at=dt.datetime.fromisoformat(record["ingested_at"]),
    )
