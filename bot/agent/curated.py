"""Curated answers: a counsellor's reply, approved by an admin for a question pattern and the
document it rests on. A new question in the same language whose embedding is at least
``settings.curated_threshold`` similar (cosine) to a pattern gets that answer, still citing
the document (the agent checks that the document is in the index and in force).

``CuratedAnswers`` holds the approved answers in memory; whoever owns the database (the web
console, the Telegram bot) calls ``replace`` with them at start-up and after each change.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.components.embeddings import Embedder, Vectors
from bot.kb.models import Lang


@dataclass(frozen=True, slots=True)
class CuratedEntry:
    id: int
    question: str
    answer: str
    lang: str
    doc_id: str


@dataclass(frozen=True, slots=True)
class CuratedMatch:
    entry: CuratedEntry
    similarity: float


class CuratedAnswers:
    def __init__(self, embedder: Embedder, threshold: float) -> None:
        self._embedder = embedder
        self.threshold = threshold
        self._lock = threading.Lock()
        self._entries: list[CuratedEntry] = []
        self._vectors: Vectors | None = None
        self._cache: dict[str, Vectors] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def replace(self, entries: Sequence[CuratedEntry]) -> None:
        """Use these approved answers from now on (question embeddings are cached)."""
        vectors = [self._vector(entry.question) for entry in entries]
        matrix = np.stack(vectors) if vectors else None
        with self._lock:
            self._entries = list(entries)
            self._vectors = matrix
            keep = {entry.question for entry in entries}
            self._cache = {q: v for q, v in self._cache.items() if q in keep}

    def _vector(self, text: str) -> Vectors:
        cached = self._cache.get(text)
        if cached is None:
            cached = np.asarray(self._embedder.embed_query(text), dtype=np.float32).reshape(-1)
            self._cache[text] = cached
        return cached

    def match(self, question: str, lang: Lang) -> CuratedMatch | None:
        """The most similar approved answer in ``lang`` at or above the threshold."""
        with self._lock:
            entries, matrix = self._entries, self._vectors
        if matrix is None or not question.strip():
            return None
        query = np.asarray(self._embedder.embed_query(question), dtype=np.float32).reshape(-1)
        scores = matrix @ query
        best: CuratedMatch | None = None
        for entry, score in zip(entries, scores.tolist(), strict=True):
            if entry.lang != lang or score < self.threshold:
                continue
            if best is None or score > best.similarity:
                best = CuratedMatch(entry, round(float(score), 4))
        return best
