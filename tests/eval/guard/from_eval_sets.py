"""Writes ``train_eval_questions.jsonl``: the in-domain questions of the retrieval and answer
development sets (``tests/eval/retrieval.jsonl``, the ``answer`` items of
``tests/eval/answers.jsonl``), labelled ``ordinary`` — plain policy, rights and procedure
questions, which the hand-written training files have few of. The held-out answer set is
never used. Run from the repository root: ``python tests/eval/guard/from_eval_sets.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path

EVAL = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")


def lang_of(text: str) -> str:
    return "zh" if CJK.search(text) else "en"


def main() -> None:
    rows = []
    for line in (EVAL / "retrieval.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        rows.append({"text": item["question"], "context": []})
    for line in (EVAL / "answers.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item["expect"] == "answer":
            *earlier, last = item["turns"]
            rows.append({"text": last, "context": earlier})
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["text"] in seen:
            continue
        seen.add(row["text"])
        record = {
            "text": row["text"],
            "label": "ordinary",
            "also": [],
            "lang": lang_of(row["text"]),
            "context": row["context"],
        }
        out.append(json.dumps(record, ensure_ascii=False))
    target = Path(__file__).resolve().parent / "train_eval_questions.jsonl"
    target.write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
