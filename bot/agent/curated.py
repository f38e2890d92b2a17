"""Curated answers: a counsellor's reply, approved by an admin for a question pattern and the
document it rests on. A new question in the same language whose embedding is at least
``settings.curated_threshold`` similar (cosine) to a pattern gets that answer, still citing
the document (the agent checks that the document is in the index and in force).

``CuratedAnswers`` holds the approved answers in memory; whoever owns the database (the web
console, the Telegram bot) calls ``replace`` with them at start-up and after each change.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bot.agent.redact import redact
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


_GREETING = re.compile(
    r"^\s*(?:(?:[\u4e00-\u9fff]{0,4}(?:同学|老师|先生|女士))?\s*(?:你好|您好|早上好|下午好|晚上好)"
    r"|(?:hi|hello|hey|dear)\b[^,，.!！\n]{0,30}"
    r"|[\u4e00-\u9fff]{1,4}同学)\s*[，,。.!！~～:：]*\s*",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"(?:\n|^|(?<=[。.!！]))\s*(?:[—-]+\s*)?"
    r"(?:祝(?:好|顺利|你[^\n]{0,8})|(?:best|kind) regards|cheers|[\u4e00-\u9fff]{1,3}老师|thanks)"
    r"[^\n]{0,20}\s*$",
    re.IGNORECASE,
)


def impersonal(text: str, names: Iterable[str] = ()) -> str:
    """A counsellor's reply to one graduate as an answer for everyone: the greeting and
    sign-off gone, the people's names removed, personal data redacted. What is left is for
    an admin to read and edit before it is approved."""
    out = text.strip()
    for _ in range(2):  # "张同学你好！" then a second "你好"
        out = _GREETING.sub("", out, count=1).strip()
    out = _SIGN_OFF.sub("", out).strip()
    for name in sorted(
        {n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True
    ):
        out = out.replace(name, "")
    return redact(out).strip()
