"""Retrieval quality on the evaluation set (``tests/eval/retrieval.jsonl``).

A question is a hit at rank r when the r-th distinct document retrieved is one of its
expected documents. Shared by ``bench/retrieval.py`` and the quality regression test.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from bot.kb.models import Lang
from bot.kb.retriever import Mode, Retriever


class EvalQuestion(BaseModel):
    id: str
    question: str
    lang: Lang
    expected: list[str]
    topic: str | None = None


class Metrics(BaseModel):
    mode: str
    lang: str
    n: int
    hit1: float
    hit3: float
    mrr: float
    lang_match1: float
    """Share of questions whose first document is in the question's language."""


class RunResult(BaseModel):
    metrics: list[Metrics]
    latencies_ms: dict[str, list[float]]
    misses: dict[str, list[str]]
    """Per mode, ids of questions with no expected document in the top 3."""

    def get(self, mode: str, lang: str) -> Metrics:
        return next(m for m in self.metrics if m.mode == mode and m.lang == lang)


def load_eval_set(path: Path) -> list[EvalQuestion]:
    with path.open(encoding="utf-8") as handle:
        return [EvalQuestion.model_validate(json.loads(line)) for line in handle if line.strip()]


def ranked_documents(retriever: Retriever, question: str, mode: Mode, depth: int = 10) -> list[str]:
    """Distinct document ids in rank order."""
    hits = retriever.search(question, k=depth * 4, mode=mode)
    seen: list[str] = []
    for hit in hits:
        if hit.doc_id not in seen:
            seen.append(hit.doc_id)
    return seen[:depth]


def evaluate(
    retriever: Retriever,
    questions: list[EvalQuestion],
    modes: Iterable[Mode] = ("lexical", "dense", "hybrid"),
) -> RunResult:
    metrics: list[Metrics] = []
    latencies: dict[str, list[float]] = {}
    misses: dict[str, list[str]] = {}
    for mode in modes:
        ranks: list[tuple[EvalQuestion, int | None, bool]] = []
        timings: list[float] = []
        for q in questions:
            started = time.perf_counter()
            docs = ranked_documents(retriever, q.question, mode)
            timings.append((time.perf_counter() - started) * 1000)
            rank = next((i for i, d in enumerate(docs, start=1) if d in q.expected), None)
            same_lang = bool(docs) and docs[0].endswith("-" + q.lang)
            ranks.append((q, rank, same_lang))
        latencies[mode] = timings
        misses[mode] = [q.id for q, rank, _ in ranks if rank is None or rank > 3]
        for lang in ("zh", "en", "all"):
            subset = [r for r in ranks if lang == "all" or r[0].lang == lang]
            if not subset:
                continue
            n = len(subset)
            metrics.append(
                Metrics(
                    mode=mode,
                    lang=lang,
                    n=n,
                    hit1=sum(1 for _, r, _ in subset if r == 1) / n,
                    hit3=sum(1 for _, r, _ in subset if r is not None and r <= 3) / n,
                    mrr=sum(1 / r for _, r, _ in subset if r is not None) / n,
                    lang_match1=sum(1 for *_, s in subset if s) / n,
                )
            )
    return RunResult(metrics=metrics, latencies_ms=latencies, misses=misses)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]
