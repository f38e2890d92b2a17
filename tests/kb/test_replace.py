"""One id, one document: a different file with an id already in the index replaces it only
when asked (``kb ingest --replace``), and ``kb rebuild`` reproduces every document with the
metadata it was ingested with. Every command is a real ``python -m bot`` process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bot.kb.ledger import LedgerEntry
from bot.kb.service import KnowledgeBase
from bot.settings import Settings
from tests.conftest import DocWriter, run_gradguide
from tests.fakes.documents import make_pdf


def gradguide(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` as a new process on the test's dirs (hash embeddings: fast)."""
    return run_gradguide(settings, *args, env={"GRADGUIDE_EMBEDDING": "hash", "COLUMNS": "200"})


def ok(settings: Settings, *args: str) -> str:
    done = gradguide(settings, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def show(settings: Settings, doc_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(ok(settings, "kb", "show", doc_id, "--json"))
    return shown


def listed(settings: Settings) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in json.loads(ok(settings, "kb", "list", "--json"))}


def test_a_different_file_with_a_bundled_documents_id_is_refused_unless_replace_is_given(
    settings: Settings, write_doc: DocWriter, tmp_path: Path
) -> None:
    bundled = write_doc("subsidy-zh", "## 补贴\n\n见习补贴每月一千元。\n", title="见习补贴规定")
    write_doc("other-zh", "## 其他\n\n社会保险登记在三十日内办理。\n", title="社保登记")
    ok(settings, "kb", "ingest", str(settings.knowledge_dir))

    newer = write_doc(
        "subsidy-zh", "## 补贴\n\n见习补贴每月两千元。\n", folder=tmp_path / "inbox", title="新规定"
    )
    refused = gradguide(settings, "kb", "ingest", str(newer))
    assert refused.returncode == 1
    said = " ".join((refused.stdout + refused.stderr).split())
    assert "subsidy-zh" in said and "见习补贴规定" in said  # the existing document, named
    assert str(bundled) in said  # ... and where it came from
    assert "--replace" in said  # ... and how to replace it on purpose
    assert "Traceback" not in said
    kept = show(settings, "subsidy-zh")
    assert kept["title"] == "见习补贴规定" and "一千元" in kept["chunks"][0]["text"]

    ok(settings, "kb", "ingest", str(newer), "--replace")
    replaced = show(settings, "subsidy-zh")
    assert replaced["title"] == "新规定" and "两千元" in replaced["chunks"][0]["text"]

    # the rebuild keeps the replacement and does not trip over the bundled file it replaced
    rebuilt = gradguide(settings, "kb", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert show(settings, "subsidy-zh")["title"] == "新规定"
    assert set(listed(settings)) == {"subsidy-zh", "other-zh"}

    # the same file again is an update, as it always was: no --replace needed
    write_doc(
        "subsidy-zh", "## 补贴\n\n见习补贴每月三千元。\n", folder=tmp_path / "inbox", title="新规定"
    )
    assert "1" in ok(settings, "kb", "ingest", str(newer))
    assert "三千元" in show(settings, "subsidy-zh")["chunks"][0]["text"]


def test_rebuild_reproduces_documents_ingested_with_command_line_metadata(
    settings: Settings, write_doc: DocWriter, tmp_path: Path
) -> None:
    write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n", title="试用期规定")
    ok(settings, "kb", "ingest", str(settings.knowledge_dir))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notice.txt").write_text(
        "高校毕业生可以申请一次性求职创业补贴，由学校初审。", encoding="utf-8"
    )
    (inbox / "page.html").write_text(
        "<html><body><h2>Hukou</h2><p>Graduates may settle their hukou within two years.</p>"
        "</body></html>",
        encoding="utf-8",
    )
    (inbox / "scan.pdf").write_bytes(make_pdf("Internship allowance is paid to the employer."))
    common = ("--authority", "Local bureau", "--issued", "2025-03-01")
    ok(
        settings,
        *("kb", "ingest", str(inbox / "notice.txt"), "--id", "notice-zh"),
        *("--title", "求职补贴通知", "--lang", "zh", "--region", "guizhou", *common),
        *("--topics", "subsidy,C1"),
    )
    ok(
        settings,
        *("kb", "ingest", str(inbox / "page.html"), "--id", "hukou-en", "--lang", "en"),
        *("--region", "shanghai", "--title", "Hukou rules", *common),
    )
    ok(
        settings,
        *("kb", "ingest", str(inbox / "scan.pdf"), "--id", "allowance-en", "--lang", "en"),
        *("--region", "national", "--title", "Internship allowance", *common),
        *("--expires", "2030-12-31"),
    )
    before = listed(settings)

    rebuilt = gradguide(settings, "kb", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    after = listed(settings)
    assert set(after) == {"probation-zh", "notice-zh", "hukou-en", "allowance-en"}
    for doc_id in after:
        for field in ("title", "lang", "region", "topics", "authority", "issued", "expires"):
            assert after[doc_id][field] == before[doc_id][field], (doc_id, field)
    assert after["notice-zh"]["region"] == "guizhou"
    assert after["notice-zh"]["topics"] == ["subsidy", "C1"]
    assert after["hukou-en"]["title"] == "Hukou rules"
    assert after["allowance-en"]["expires"] == "2030-12-31"
    assert "employer" in show(settings, "allowance-en")["chunks"][0]["text"]


def test_a_rebuild_of_an_index_made_before_the_ledger_keeps_command_line_metadata(
    settings: Settings, tmp_path: Path
) -> None:
    """An index built by an earlier version has no ledger: the metadata its registry holds
    is used for a file that cannot give its document alone."""
    notice = tmp_path / "notice.txt"
    notice.write_text("高校毕业生可以申请一次性求职创业补贴，由学校初审。", encoding="utf-8")
    ok(
        settings,
        *("kb", "ingest", str(notice), "--id", "notice-zh", "--title", "求职补贴通知"),
        *("--lang", "zh", "--authority", "某市人社局", "--issued", "2025-03-01"),
        *("--region", "guizhou"),
    )
    kb = KnowledgeBase.open(settings.model_copy(update={"embedding": "hash"}))
    for doc_id in kb.index.ledger():  # as an earlier version left it
        kb.index.record(LedgerEntry(doc_id=doc_id))
    assert kb.index.ledger() == {}

    rebuilt = gradguide(settings, "kb", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    shown = show(settings, "notice-zh")
    assert (shown["title"], shown["region"]) == ("求职补贴通知", "guizhou")
    assert (
        "notice-zh"
        in KnowledgeBase.open(settings.model_copy(update={"embedding": "hash"})).index.ledger()
    )
