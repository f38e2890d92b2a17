"""An admin's change to a document (expire it; any metadata field) is stored with the
knowledge base and applied on every (re)index: a ``kb rebuild`` in another process and a
restart keep it, until the admin undoes it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from bot.kb.service import KnowledgeBase, OverrideStatus
from bot.settings import Settings
from tests.conftest import DocWriter
from tests.kb.test_replace import gradguide, ok, show

HUKOU = "## 落户\n\n毕业两年内与本市用人单位签订劳动合同的毕业生可以申请落户。\n"
PROBATION = "## 试用期\n\n劳动合同期限三年以上的，试用期不得超过六个月。\n"
HUKOU_QUESTION = "毕业生怎么申请落户"


def hash_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"embedding": "hash"})


def cited(settings: Settings, question: str) -> set[str]:
    """The documents a new process's search cites (as the bot would answer)."""
    hits = json.loads(ok(settings, "kb", "search", question, "--json", "--k", "5"))
    return {hit["doc_id"] for hit in hits}


def test_an_expired_document_stays_expired_through_a_rebuild_and_a_restart_until_undone(
    settings: Settings, write_doc: DocWriter
) -> None:
    settings = hash_settings(settings)
    write_doc("hukou-zh", HUKOU, title="落户规定")
    write_doc("probation-zh", PROBATION, title="试用期规定")
    kb = KnowledgeBase.open(settings)
    assert not kb.ingest([settings.knowledge_dir]).failed
    assert "hukou-zh" in cited(settings, HUKOU_QUESTION)

    outcome = kb.expire("hukou-zh")  # what the console's Expire button calls
    assert outcome.status is OverrideStatus.APPLIED
    yesterday = dt.date.today() - dt.timedelta(days=1)
    assert kb.document("hukou-zh").meta.expires == yesterday
    assert all(h.doc_id != "hukou-zh" for h in kb.search(HUKOU_QUESTION))

    rebuilt = gradguide(settings, "kb", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    restarted = KnowledgeBase.open(settings)  # a new process: nothing carried in memory
    doc = restarted.document("hukou-zh")
    assert doc.meta.expires == yesterday
    assert restarted.validity(doc).value == "expired"
    assert doc.meta.title == "落户规定"  # the rest of the metadata is the file's
    assert "hukou-zh" not in cited(settings, HUKOU_QUESTION)
    assert restarted.overrides("hukou-zh") == {"expires": yesterday.isoformat()}
    shown = show(settings, "hukou-zh")  # `kb show` says why it is expired
    assert shown["admin_overrides"] == {"expires": yesterday.isoformat()}

    # the file changes and is ingested again: the admin's expiry still holds
    write_doc("hukou-zh", HUKOU + "\n## 材料\n\n毕业证和劳动合同。\n", title="落户规定")
    report = restarted.ingest([settings.knowledge_dir])
    assert report.count("updated") == 1 and not report.failed
    assert restarted.document("hukou-zh").meta.expires == yesterday

    undone = restarted.clear_overrides("hukou-zh")  # the console's Undo
    assert undone.status is OverrideStatus.APPLIED
    assert restarted.document("hukou-zh").meta.expires is None
    ok(settings, "kb", "rebuild")
    assert KnowledgeBase.open(settings).document("hukou-zh").meta.expires is None
    assert "hukou-zh" in cited(settings, HUKOU_QUESTION)


def test_a_metadata_override_survives_a_rebuild_and_is_validated(
    settings: Settings, write_doc: DocWriter
) -> None:
    settings = hash_settings(settings)
    write_doc("hukou-zh", HUKOU, title="落户规定")
    kb = KnowledgeBase.open(settings)
    kb.ingest([settings.knowledge_dir])

    changed = kb.set_overrides("hukou-zh", {"region": "上海", "title": "上海落户规定"})
    assert changed.status is OverrideStatus.APPLIED
    refused = kb.set_overrides("hukou-zh", {"issued": "not a date"})
    assert refused.status is OverrideStatus.INVALID and "issued" in (refused.reason or "")
    assert kb.set_overrides("nope", {"title": "x"}).status is OverrideStatus.NOT_FOUND

    ok(settings, "kb", "rebuild")
    meta = KnowledgeBase.open(settings).document("hukou-zh").meta
    assert (meta.region, meta.title) == ("shanghai", "上海落户规定")


def test_an_override_needs_the_source_file(
    settings: Settings, write_doc: DocWriter, tmp_path: Path
) -> None:
    settings = hash_settings(settings)
    gone = write_doc("gone-zh", PROBATION, folder=tmp_path / "inbox", title="临时文件")
    kb = KnowledgeBase.open(settings)
    kb.ingest([gone])
    gone.unlink()
    assert kb.expire("gone-zh").status is OverrideStatus.NO_SOURCE
    assert kb.document("gone-zh").meta.expires is None
    assert kb.overrides("gone-zh") == {}  # nothing is recorded that is not in force


def test_an_expired_document_that_is_removed_does_not_come_back_in_force(
    settings: Settings, write_doc: DocWriter
) -> None:
    """Removing it and rebuilding reads its file in the knowledge folder again (as always);
    the admin's expiry still holds, visible and undoable."""
    settings = hash_settings(settings)
    write_doc("hukou-zh", HUKOU, title="落户规定")
    kb = KnowledgeBase.open(settings)
    kb.ingest([settings.knowledge_dir])
    assert kb.expire("hukou-zh").status is OverrideStatus.APPLIED
    kb.remove("hukou-zh")
    ok(settings, "kb", "rebuild")
    restarted = KnowledgeBase.open(settings)
    assert restarted.validity(restarted.document("hukou-zh")).value == "expired"
    assert "hukou-zh" not in cited(settings, HUKOU_QUESTION)
