"""The admin's command line: ingest, list, show, search, stats, remove, rebuild."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings
from tests.conftest import DocWriter, run_cli, run_gradguide


def test_admin_workflow(
    env: Settings, write_doc: DocWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n", title="试用期规定")
    write_doc(
        "old-subsidy-zh",
        "## 补助\n\n一次性扩岗补助每人1500元。\n",
        title="扩岗补助",
        expires=dt.date(2025, 12, 31),
    )
    code, out, _ = run_cli(capsys, "kb", "ingest", str(env.knowledge_dir))
    assert code == 0
    assert "added" in out and "2" in out

    code, out, _ = run_cli(capsys, "kb", "list", "--json")
    listed = {row["id"]: row for row in json.loads(out)}
    assert listed["probation-zh"]["validity"] == "active"
    assert listed["old-subsidy-zh"]["validity"] == "expired"
    code, out, _ = run_cli(capsys, "kb", "list")
    assert "EXPIRED" in out

    code, out, _ = run_cli(capsys, "kb", "search", "试用期最长多久", "--json", "--k", "3")
    hits = json.loads(out)
    assert hits[0]["doc_id"] == "probation-zh"
    assert hits[0]["found_by"] == "dense+lexical"
    assert hits[0]["rank"] == 1 and hits[0]["score"] > 0
    assert all(h["doc_id"] != "old-subsidy-zh" for h in hits)
    code, out, _ = run_cli(capsys, "kb", "search", "扩岗补助", "--json", "--include-expired")
    assert json.loads(out)[0]["doc_id"] == "old-subsidy-zh"

    code, out, _ = run_cli(capsys, "kb", "show", "probation-zh", "--json")
    shown = json.loads(out)
    assert shown["title"] == "试用期规定" and "六个月" in shown["chunks"][0]["text"]

    code, out, _ = run_cli(capsys, "kb", "stats", "--json")
    stats = json.loads(out)
    assert stats["documents"] == 2 and stats["by_validity"] == {"active": 1, "expired": 1}

    code, out, _ = run_cli(capsys, "kb", "remove", "old-subsidy-zh")
    assert code == 0 and "Removed old-subsidy-zh" in out
    code, _, err = run_cli(capsys, "kb", "show", "old-subsidy-zh")
    assert code == 2 and "no document with id 'old-subsidy-zh'" in err

    code, out, _ = run_cli(capsys, "kb", "rebuild")
    assert code == 0
    code, out, _ = run_cli(capsys, "kb", "list", "--json")
    assert {row["id"] for row in json.loads(out)} == {"probation-zh", "old-subsidy-zh"}


def test_ingest_reports_failures_and_exits_nonzero(
    env: Settings, write_doc: DocWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n")
    bad = env.knowledge_dir / "broken.md"
    bad.write_text("---\ntitle: 没有编号\nlang: zh\n---\n正文。\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "kb", "ingest", str(good), str(bad))
    assert code == 1
    assert "broken.md" in out and "'id'" in out and "required" in out


def test_metadata_options_for_a_file_without_front_matter(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    text = env.knowledge_dir / "notice.txt"
    text.write_text("高校毕业生可以申请一次性求职创业补贴，由学校初审。", encoding="utf-8")
    code, out, _ = run_cli(
        capsys,
        *("kb", "ingest", str(text), "--id", "notice-zh", "--title", "求职补贴通知"),
        *("--lang", "zh", "--authority", "某市人社局", "--issued", "2025-03-01"),
        *("--region", "guizhou", "--topics", "subsidy,C1"),
    )
    assert code == 0, out
    code, out, _ = run_cli(capsys, "kb", "show", "notice-zh", "--json")
    shown = json.loads(out)
    assert shown["region"] == "guizhou" and shown["topics"] == ["subsidy", "C1"]


def test_first_search_builds_the_index(
    env: Settings, write_doc: DocWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n")
    code, out, err = run_cli(capsys, "kb", "search", "试用期", "--json")
    assert code == 0 and "first use" in err
    assert json.loads(out)[0]["doc_id"] == "probation-zh"


def test_errors_are_messages_not_tracebacks(env: Settings, tmp_path: Path) -> None:
    result = run_gradguide(env, "kb", "remove", "no-such-doc")
    assert result.returncode == 2
    assert "no document with id 'no-such-doc'" in result.stderr
    assert "Traceback" not in result.stderr

    bad_url = subprocess.run(
        [sys.executable, "-m", "bot", "kb", "list"],
        capture_output=True,
        text=True,
        env={"GRADGUIDE_CHROMA_URL": "localhost:8000", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert bad_url.returncode == 2
    assert "GRADGUIDE_CHROMA_URL" in bad_url.stderr and "Traceback" not in bad_url.stderr
