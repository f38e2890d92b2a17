"""Answer benchmark: quality on ``tests/eval/answers.jsonl`` and on the held-out set, warm
latency, memory, and `gradguide ask` in a new process — on the embedded default configuration.

Usage:
    python bench/answer.py [--runs 3]

Builds the bundled index in a temporary data dir (not timed), runs every evaluation item
once to warm up, then again for the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serving import serving_peak_mb  # noqa: E402
from bot.agent.agent import Agent  # noqa: E402
from bot.agent.evaluation import evaluate, load_items  # noqa: E402
from bot.cli import answer_quality_table  # noqa: E402
from bot.kb.evaluation import percentile  # noqa: E402
from bot.kb.service import KnowledgeBase  # noqa: E402
from bot.settings import Settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="new-process `ask` runs")
    parser.add_argument("--eval", type=Path, default=ROOT / "tests" / "eval" / "answers.jsonl")
    parser.add_argument(
        "--holdout",
        type=Path,
        default=ROOT / "tests" / "eval" / "answers_holdout.jsonl",
        help="questions never used for tuning: the check on over-fitting",
    )
    args = parser.parse_args()
    console = Console(width=120)
    items = load_items(args.eval)
    with tempfile.TemporaryDirectory(prefix="gg-bench-answer-") as tmp:
        settings = Settings(data_dir=Path(tmp), chroma_url=None)
        kb = KnowledgeBase.open(settings)
        kb.ingest([settings.knowledge_dir])
        agent = Agent(kb, settings)
        evaluate(agent, items)  # warm-up
        results, table = evaluate(agent, items)
        holdout_items = load_items(args.holdout)
        _, holdout_table = evaluate(agent, holdout_items)
        latencies = [r.reply.latency_ms for r in results]
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        env = {**os.environ, "GRADGUIDE_DATA_DIR": tmp}
        ask_times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "bot", "ask", "试用期最长多久？", "--json"],
                env=env,
                check=True,
                capture_output=True,
            )
            ask_times.append(time.perf_counter() - started)
        # what a serving bot holds: a new process, the index already built, answering
        # every question of both sets (the figure above includes the full ingest)
        serving_mb = serving_peak_mb(
            Path(tmp), [(item.id, list(item.turns)) for item in [*items, *holdout_items]]
        )

    quality = answer_quality_table(table, f"Answer quality — {len(items)} items")
    console.print(quality)
    console.print(
        answer_quality_table(
            holdout_table, f"{args.holdout.name} — {len(holdout_items)} items (not tuned on)"
        )
    )

    perf = Table(title="Performance (embedded default, warm)")
    perf.add_column("measure")
    perf.add_column("value", justify="right")
    perf.add_row(
        "answers asserting a policy fact without a citation", str(table[0].uncited_answers)
    )
    perf.add_row(
        "answer latency p50 / p95",
        f"{percentile(latencies, 50):.1f} / {percentile(latencies, 95):.1f} ms",
    )
    perf.add_row(
        "peak resident memory (this process: full ingest, then answers)", f"{rss_mb:.0f} MB"
    )
    perf.add_row(
        "peak resident memory answering every question (`gradguide ask --jsonl`)",
        f"{serving_mb:.0f} MB",
    )
    perf.add_row(
        f"`gradguide ask` new process (median of {args.runs})",
        f"{statistics.median(ask_times):.2f} s",
    )
    console.print(perf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
