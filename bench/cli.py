"""Command-line timings an admin feels: `gradguide kb search` in a new process with the index
already built, and `gradguide kb ingest` of the bundled corpus when nothing changed.

Usage:
    python bench/cli.py [--runs 5]

Builds the bundled index once in a temporary data dir (not timed), then runs each command
``--runs`` times as a fresh process and prints min / median / max wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["试用期工资最低多少", "can my employer keep my ID card?", "三方协议违约金要交多少"]


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    gradguide = [sys.executable, "-m", "bot"]
    with tempfile.TemporaryDirectory(prefix="gg-bench-cli-") as tmp:
        env = {**os.environ, "GRADGUIDE_DATA_DIR": tmp}
        build = timed([*gradguide, "kb", "ingest", str(ROOT / "knowledge")], env)
        rows = {
            "kb search (new process)": [
                timed([*gradguide, "kb", "search", QUERIES[i % len(QUERIES)], "--json"], env)
                for i in range(args.runs)
            ],
            "kb ingest knowledge/ (unchanged)": [
                timed([*gradguide, "kb", "ingest", str(ROOT / "knowledge")], env)
                for _ in range(args.runs)
            ],
        }
    table = Table(title=f"CLI wall time, {args.runs} runs each (first full ingest: {build:.1f} s)")
    for column in ("command", "min", "median", "max"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for name, values in rows.items():
        table.add_row(
            name,
            f"{min(values):.2f} s",
            f"{statistics.median(values):.2f} s",
            f"{max(values):.2f} s",
        )
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
