"""A long-running knowledge-base process for tests/kb/test_cross_process.py: what the bot and
the console do with the index, as an OS process of its own.

Run as ``python -m tests.kb.kb_process`` with the usual ``GRADGUIDE_*`` environment. It opens
the knowledge base once, then a background thread searches without pause (as the bot answers
questions), and it obeys one JSON command per stdin line with one JSON line on stdout:

    {"search": "问题"}        -> {"ids": [doc ids, best first], "texts": [...]} or {"error": "..."}
    {"ingest": "/a/file.md"}  -> {"statuses": ["added" | "updated" | ...]} or {"error": "..."}
    {"remove": "doc-id"}      -> {"removed": "doc-id"} or {"error": "..."}
    {"errors": true}          -> {"searches": n, "errors": [every background failure]}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bot.kb.service import KnowledgeBase
from bot.settings import Settings

BACKGROUND_QUESTIONS = ("试用期最长多久", "见习补贴发给谁", "社会保险登记")


def _describe(exc: Exception) -> str:
    return f"{type(exc).__module__}.{type(exc).__name__}: {exc}"


def main() -> None:
    kb = KnowledgeBase.open(Settings())
    searches = 0
    errors: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        nonlocal searches
        while not stop.is_set():
            for question in BACKGROUND_QUESTIONS:
                try:
                    kb.search(question, k=3)
                except Exception as exc:
                    errors.append(_describe(exc))
                searches += 1
            time.sleep(0.01)

    def run(command: dict[str, Any]) -> dict[str, Any]:
        try:
            if "search" in command:
                hits = kb.search(command["search"], k=3)
                return {"ids": [h.doc_id for h in hits], "texts": [h.text for h in hits]}
            if "ingest" in command:
                report = kb.ingest([Path(command["ingest"])])
                return {"statuses": [o.status for o in report.outcomes]}
            if "remove" in command:
                return {"removed": kb.remove(command["remove"]).meta.id}
            return {"searches": searches, "errors": list(errors)}
        except Exception as exc:
            return {"error": _describe(exc)}

    kb.search(BACKGROUND_QUESTIONS[0])  # warm: the vectors are loaded before "ready"
    background = threading.Thread(target=hammer, daemon=True)
    background.start()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run(json.loads(line)), ensure_ascii=False), flush=True)
    stop.set()
    background.join(timeout=10)


if __name__ == "__main__":
    main()
