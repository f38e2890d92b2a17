"""What a serving bot holds: a new process on an index that is already built, answering a
file of questions (``gradguide ask --jsonl``), reports its own peak resident memory.

A benchmark's own process also ingests the whole corpus (jieba, every chunk embedded), so its
peak is not what the bot needs to answer; this is. ``RUSAGE_CHILDREN`` would count the pages
the benchmark shares with a fork, so the child reads ``VmHWM`` from ``/proc/self/status``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

SERVING = """
import sys
from bot.cli import main
code = main(["ask", "--jsonl", sys.argv[1]])
with open("/proc/self/status") as status:
    print(*[line for line in status if line.startswith("VmHWM")], file=sys.stderr)
sys.exit(code)
"""


def serving_peak_mb(data_dir: Path, conversations: Iterable[tuple[str, list[str]]]) -> float:
    """Peak resident memory (MB) of a new process answering ``conversations`` (an id and
    its messages, in order) on the index in ``data_dir``."""
    questions = data_dir / "serving-questions.jsonl"
    with questions.open("w", encoding="utf-8") as handle:
        for number, (key, turns) in enumerate(conversations):
            for turn in turns:
                line = {"id": key, "question": turn, "conversation_id": f"{number}:{key}"}
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    serving = subprocess.run(
        [sys.executable, "-c", SERVING, str(questions)],
        env={**os.environ, "GRADGUIDE_DATA_DIR": str(data_dir)},
        check=True,
        capture_output=True,
        text=True,
    )
    return int(serving.stderr.rsplit("VmHWM:", 1)[1].split()[0]) / 1024
