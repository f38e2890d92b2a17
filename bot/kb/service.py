"""``KnowledgeBase``: the one object the CLI, the agent and the channels use."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bot.components.embeddings import Embedder, build_embedder
from bot.components.vectorstore import open_chroma
from bot.kb.index import INDEX_LOCK_FILE, IndexLock, KnowledgeIndex
from bot.kb.ingest import Ingestor, IngestReport, Progress
from bot.kb.lexical import Tokenizer
from bot.kb.models import IndexedDocument, Validity
from bot.kb.retriever import Hit, Retriever
from bot.settings import Settings


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

    # -- admin ---------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[Path],
        overrides: Mapping[str, Any] | None = None,
        *,
        force: bool = False,
        on_file_done: Progress | None = None,
    ) -> IngestReport:
        report = self.ingestor.ingest(paths, overrides, force=force, on_file_done=on_file_done)
        self.retriever.refresh(force=True)
        return report

    def rebuild_sources(self) -> list[Path]:
        """What ``rebuild`` re-reads: the knowledge folder plus every other recorded source."""
        sources: list[Path] = [self.settings.knowledge_dir]
        knowledge = self.settings.knowledge_dir.resolve()
        for doc in self.index.documents():
            source = Path(doc.source)
            if source.exists() and not source.resolve().is_relative_to(knowledge):
                sources.append(source)
        return sources

    def rebuild(self, on_file_done: Progress | None = None) -> IngestReport:
        """Re-read and re-embed every source, then drop orphaned chunks."""
        report = self.ingest(self.rebuild_sources(), force=True, on_file_done=on_file_done)
        self.index.collect_garbage()
        return report

    def ensure_built(self, on_file_done: Progress | None = None) -> IngestReport | None:
        """Build the index from the knowledge folder on first use."""
        if self.index.documents():
            return None
        return self.ingest([self.settings.knowledge_dir], on_file_done=on_file_done)

    def remove(self, doc_id: str) -> IndexedDocument:
        doc = self.index.remove_document(doc_id)
        self.retriever.refresh(force=True)
        return doc

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
