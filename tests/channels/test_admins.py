"""Admins over real HTTP against the fake Bot API: documents sent in a private chat are
ingested into the knowledge base (and then answer graduates), ``/kb``, ``/kb_remove``,
``/stats`` and ``/unanswered``; everyone else is refused.

The knowledge base (``bundled_kb``) is shared by the whole test session: every document a
test adds is removed again in a ``finally``, and the ids are used by no other test."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.errors import DocumentNotFoundError
from bot.kb.service import KnowledgeBase
from bot.storage.models import KbUploadRow
from bot.storage.store import Upload
from tests.channels.conftest import ADMIN, COUNSELLOR, GRADUATE, Bot, Stack
from tests.fakes.telegram_server import FakeTelegram, SentRecord

UPLOAD_ID = "test-upload-zh"
UPLOAD_FACT = "8888元"
UPLOAD_TITLE = "星河市高校毕业生星火安家补贴（测试文档）"
UPLOAD_QUESTION = "星河市星火安家补贴是多少钱？"
UPLOAD_DOC = f"""---
id: {UPLOAD_ID}
title: {UPLOAD_TITLE}
lang: zh
authority: 星河市人力资源和社会保障局
issued: 2025-03-01
region: national
topics: [subsidy, 星火安家补贴]
summary: 星河市对来星河市就业的高校毕业生发放星火安家补贴，标准为每人8888元。
---

# 星河市高校毕业生星火安家补贴

## 星火安家补贴发多少

星河市对到星河市就业的高校毕业生发放星火安家补贴，标准为每人8888元，一次性发放。

## 怎么申请

毕业生在星河市就业满三个月后，向星河市人才服务中心提交申请。
""".encode()

BROKEN_ID = "test-upload-broken-zh"
BROKEN_DOC = f"""---
id: {BROKEN_ID}
title: 缺少发文机关和日期的文档
lang: zh
region: national
---

# 缺少字段

这份文档的前言缺少 authority 和 issued 两个必填字段。
""".encode()

NOT_SURE_QUESTION = "宁夏2026年博士后安家费是多少？我的手机号是13812345678"
PHONE = "13812345678"


def shown(bot: Bot, key: str, lang: str = "zh", **values: object) -> str:
    """A catalogue message as the user sees it (HTML parsed)."""
    return html.unescape(re.sub(r"<[^>]+>", "", bot.messages.get(key, lang, **values)))


def doc_ids(kb: KnowledgeBase) -> set[str]:
    return {d.meta.id for d in kb.documents()}


@contextlib.asynccontextmanager
async def removed_afterwards(kb: KnowledgeBase, *ids: str) -> AsyncIterator[None]:
    """The shared knowledge base is left as it was, whatever the test did."""
    try:
        yield
    finally:
        for doc_id in ids:
            with contextlib.suppress(DocumentNotFoundError):
                kb.remove(doc_id)


async def uploads(bot: Bot) -> list[Upload]:
    async with bot.store.transaction() as session:
        rows = (await session.execute(select(KbUploadRow.id).order_by(KbUploadRow.id))).all()
    found = [await bot.store.get_upload(row.id) for row in rows]
    return [u for u in found if u is not None]


async def ask_admin(tg: FakeTelegram, command: str, args: str = "") -> SentRecord:
    mark = tg.mark()
    tg.send_command(ADMIN, command, args)
    return await tg.await_for(chat=ADMIN, since=mark, timeout=20)


async def kb_listing(tg: FakeTelegram) -> str:
    """``/kb``: the whole list, however many messages it takes."""
    mark = tg.mark()
    tg.send_command(ADMIN, "kb")
    await tg.await_for(chat=ADMIN, since=mark, timeout=20)
    await tg.await_idle()
    return "\n".join(r.text or "" for r in tg.messages_to(ADMIN) if r.index >= mark)


# -- uploads ------------------------------------------------------------------------------


async def test_an_admins_document_is_ingested_answers_graduates_and_can_be_removed(
    tg: FakeTelegram, bot: Bot
) -> None:
    admin = tg.user(ADMIN, "Admin", language_code="zh", started=True)
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    kb = bot.services.kb
    assert UPLOAD_ID not in doc_ids(kb)
    async with removed_afterwards(kb, UPLOAD_ID):
        mark = tg.mark()
        tg.send_document(admin, f"{UPLOAD_ID}.md", UPLOAD_DOC, "text/markdown")
        started = await tg.await_for(chat=ADMIN, since=mark, timeout=20)
        assert started.text == shown(bot, "adm_ingest_started", "zh", name=f"{UPLOAD_ID}.md")
        done = await tg.await_for(chat=ADMIN, since=mark, text="导入完成", timeout=60)
        assert done.text == shown(
            bot, "adm_ingest_done", "zh", added=1, updated=0, unchanged=0, failed=0
        )
        assert UPLOAD_ID in doc_ids(kb)

        # the upload is recorded: a restart finds it finished, not pending
        (upload,) = await uploads(bot)
        assert upload.status == "done" and upload.admin_telegram_id == ADMIN
        assert upload.file_name == f"{UPLOAD_ID}.md" and upload.finished_at is not None
        assert upload.report is not None
        assert [o["doc_id"] for o in upload.report["outcomes"]] == [UPLOAD_ID]
        assert await bot.store.pending_uploads() == []

        # a graduate's question is now answered from the new document, citing it
        mark = tg.mark()
        tg.send_text(alice, UPLOAD_QUESTION)
        answer = await tg.await_for(chat=GRADUATE, since=mark, text=UPLOAD_FACT, timeout=20)
        assert UPLOAD_TITLE in (answer.text or "")

        listing = await kb_listing(tg)
        assert listing.startswith(shown(bot, "adm_kb_header", "zh", count=len(kb.documents())))
        assert f"{UPLOAD_ID} — {UPLOAD_TITLE}" in listing.splitlines()
        assert any(line.startswith("probation-zh — ") for line in listing.splitlines())

        removed = await ask_admin(tg, "kb_remove", UPLOAD_ID)
        assert removed.text == shown(bot, "adm_kb_removed", "zh", doc_id=UPLOAD_ID)
        assert UPLOAD_ID not in doc_ids(kb)
        assert UPLOAD_ID not in await kb_listing(tg)

        # ... and graduates no longer get the removed fact
        mark = tg.mark()
        tg.send_text(alice, UPLOAD_QUESTION)
        again = await tg.await_for(chat=GRADUATE, since=mark, timeout=20)
        assert UPLOAD_FACT not in (again.text or "")

    unknown = await ask_admin(tg, "kb_remove", "nope")
    assert unknown.text == shown(bot, "adm_kb_unknown", "zh", doc_id="nope")
    usage = await ask_admin(tg, "kb_remove")
    assert usage.text == shown(bot, "adm_kb_remove_usage", "zh")


@pytest.mark.parametrize("stack", ["polling-sqlite", "webhook-postgresql"], indirect=True)
async def test_bad_uploads_are_refused_with_the_reason_and_add_nothing(
    tg: FakeTelegram, stack: Stack
) -> None:
    bot = await stack.start_bot(max_file_mb=0.01)  # 10 KiB
    admin = tg.user(ADMIN, "Admin", language_code="zh", started=True)
    kb = bot.services.kb
    before = doc_ids(kb)
    async with removed_afterwards(kb, BROKEN_ID):
        # a file type the knowledge base cannot read: refused before it is downloaded
        mark = tg.mark()
        tg.send_document(admin, "notes.exe", b"MZ\x90\x00binary", "application/octet-stream")
        refused = await tg.await_for(chat=ADMIN, since=mark, timeout=20)
        assert refused.text == shown(
            bot, "adm_file_refused", "zh", name="notes.exe", reason="不支持的文件类型"
        )

        # too large for GRADGUIDE_MAX_FILE_MB
        mark = tg.mark()
        big = UPLOAD_DOC + ("\n填充内容。" * 2000).encode()
        tg.send_document(admin, "big-zh.md", big, "text/markdown")
        too_big = await tg.await_for(chat=ADMIN, since=mark, timeout=20)
        assert too_big.text == shown(
            bot, "adm_file_refused", "zh", name="big-zh.md", reason="> 0.01 MB"
        )

        # front matter without required fields: ingested, failed, and the admin is told why
        mark = tg.mark()
        tg.send_document(admin, "broken-zh.md", BROKEN_DOC, "text/markdown")
        done = await tg.await_for(chat=ADMIN, since=mark, text="导入完成", timeout=60)
        assert done.text == shown(
            bot, "adm_ingest_done", "zh", added=0, updated=0, unchanged=0, failed=1
        )
        told = await tg.await_for(chat=ADMIN, since=mark, text="没有导入", timeout=20)
        text = told.text or ""
        # every missing field at once, named in the admin's language, with a block to copy
        assert text.startswith("broken-zh.md 没有导入：缺少或无效的字段：发文机关、发布日期")
        assert "---\nauthority: …\nissued: …\n---" in text
        await tg.await_idle()

        assert doc_ids(kb) == before
        assert tg.calls("getFile"), "the broken document was downloaded"
        (upload,) = await uploads(bot)  # refused files are never recorded
        assert upload.file_name == "broken-zh.md" and upload.status == "failed"


# -- who may do what ----------------------------------------------------------------------


async def test_non_admins_are_refused_and_their_documents_are_not_ingested(
    tg: FakeTelegram, bot: Bot
) -> None:
    mallory = tg.user(666, "Mallory", language_code="zh", started=True)
    counsellor = tg.user(COUNSELLOR, "Li", language_code="en", started=True)
    kb = bot.services.kb
    refused = {lang: shown(bot, "tg_not_allowed", lang) for lang in ("zh", "en")}

    mark = tg.mark()
    tg.send_command(counsellor, "lang", "en")
    await tg.await_for(chat=COUNSELLOR, since=mark, timeout=20)
    for user, lang in ((mallory, "zh"), (counsellor, "en")):
        for command, args in (
            ("kb", ""),
            ("kb_remove", "probation-zh"),
            ("stats", ""),
            ("unanswered", ""),
        ):
            mark = tg.mark()
            tg.send_command(user, command, args)
            answer = await tg.await_for(chat=user.id, since=mark, timeout=20)
            assert answer.text == refused[lang], (user.id, command)
    assert "probation-zh" in doc_ids(kb)

    async with removed_afterwards(kb, UPLOAD_ID):
        mark = tg.mark()
        tg.send_document(mallory, f"{UPLOAD_ID}.md", UPLOAD_DOC, "text/markdown")
        note = await tg.await_for(chat=666, since=mark, timeout=20)
        assert note.text == shown(bot, "tg_media_note", "zh")
        await tg.await_idle()
        assert UPLOAD_ID not in doc_ids(kb)
        assert not tg.calls("getFile"), "a stranger's file is never downloaded"
        assert await uploads(bot) == []


# -- statistics ---------------------------------------------------------------------------


async def test_stats_count_questions_answers_and_handoffs(tg: FakeTelegram, bot: Bot) -> None:
    tg.user(ADMIN, "Admin", language_code="zh", started=True)
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    bob = tg.user(GRADUATE + 1, "李四", language_code="zh")

    empty = await ask_admin(tg, "stats")
    assert "提问：0" in (empty.text or "") and "转给老师：0" in (empty.text or "")

    tg.send_text(alice, "试用期最长多久？")
    await tg.await_for(chat=GRADUATE, text="六个月", timeout=20)
    tg.send_text(bob, "转人工")
    await tg.await_for(chat=GRADUATE + 1, text="第 1 位", timeout=20)
    await tg.await_idle()

    stats = await ask_admin(tg, "stats")
    assert stats.text == shown(
        bot,
        "adm_stats",
        "zh",
        days=7,
        questions=2,
        answered=1,
        handed_off=1,
        thumbs_up=0,
        thumbs_down=0,
        ratings=0,
        rating_mean="—",
        median_first_reply="—",
        unanswered=0,
    )


async def test_unanswered_questions_are_listed_without_personal_data(
    tg: FakeTelegram, bot: Bot
) -> None:
    tg.user(ADMIN, "Admin", language_code="zh", started=True)
    alice = tg.user(GRADUATE, "张三", language_code="zh")

    none_yet = await ask_admin(tg, "unanswered")
    assert none_yet.text == shown(bot, "adm_unanswered_empty", "zh", days=7)

    mark = tg.mark()
    tg.send_text(alice, NOT_SURE_QUESTION)
    not_sure = await tg.await_for(chat=GRADUATE, since=mark, timeout=20)
    assert "没有找到可靠的依据" in (not_sure.text or ""), "the bot says it is not sure"

    listing = await ask_admin(tg, "unanswered")
    text = listing.text or ""
    assert text.startswith(shown(bot, "adm_unanswered_header", "zh", count=1, days=7))
    assert "宁夏2026年博士后安家费是多少" in text
    assert PHONE not in text and "138" not in text, "the phone number is redacted"

    stats = await ask_admin(tg, "stats")
    assert "未能回答：1" in (stats.text or "")
    # nothing personal is kept either
    (row,) = await bot.store.list_unanswered(bot.store.now().replace(year=2000))
    assert PHONE not in row.question


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_a_not_sure_reply_is_not_counted_as_answered(tg: FakeTelegram, bot: Bot) -> None:
    tg.user(ADMIN, "Admin", language_code="zh", started=True)
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    tg.send_text(alice, NOT_SURE_QUESTION)
    await tg.await_for(chat=GRADUATE, text="没有找到可靠的依据", timeout=20)
    stats = await ask_admin(tg, "stats")
    text = stats.text or ""
    assert "提问：1" in text and "未能回答：1" in text
    assert "机器人回答：0" in text


# -- restarts -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_an_upload_cut_off_by_a_restart_is_ingested_after_it(
    tg: FakeTelegram, stack: Stack
) -> None:
    bot = await stack.start_bot()
    kb = bot.services.kb
    tg.user(ADMIN, "Admin", language_code="zh", started=True)
    carrier = tg.user(777, "Carrier", started=True)
    async with removed_afterwards(kb, UPLOAD_ID):
        # the file is on Telegram's servers; the first process recorded the upload and
        # stopped before downloading it (as a deploy or a crash would)
        update = tg.send_document(carrier, f"{UPLOAD_ID}.md", UPLOAD_DOC, "text/markdown")
        await tg.await_for(chat=777, timeout=20)
        file_id = update["message"]["document"]["file_id"]
        upload_id = await bot.store.add_upload(ADMIN, f"{UPLOAD_ID}.md", file_id)

        bot = await stack.restart(bot)
        done = await tg.await_for(chat=ADMIN, text="导入完成", timeout=10)
        assert "新增 1 份" in (done.text or "")
        upload = await bot.store.get_upload(upload_id)
        assert upload is not None and upload.status == "done"
        assert UPLOAD_ID in doc_ids(kb)


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_the_resume_job_leaves_a_fresh_upload_to_its_handler_and_takes_a_stale_one(
    tg: FakeTelegram, stack: Stack, bot: Bot
) -> None:
    kb = bot.services.kb
    tg.user(ADMIN, "Admin", language_code="zh", started=True)
    carrier = tg.user(777, "Carrier", started=True)
    queue = bot.application.job_queue
    assert queue is not None
    (job,) = queue.get_jobs_by_name("uploads")
    async with removed_afterwards(kb, UPLOAD_ID):
        update = tg.send_document(carrier, f"{UPLOAD_ID}.md", UPLOAD_DOC, "text/markdown")
        await tg.await_for(chat=777, timeout=20)
        file_id = update["message"]["document"]["file_id"]
        # recorded after start-up, as the document handler records the upload it ingests
        upload_id = await bot.store.add_upload(ADMIN, f"{UPLOAD_ID}.md", file_id)

        mark = tg.mark()
        await job.run(bot.application)
        await tg.await_idle()
        assert [r.text for r in tg.messages_to(ADMIN) if r.index >= mark] == []
        assert [u.id for u in await bot.store.pending_uploads()] == [upload_id]

        # still pending ten minutes on: the replica that recorded it stopped, so it is resumed
        stack.clock.advance(seconds=601)
        await job.run(bot.application)
        done = await tg.await_for(chat=ADMIN, since=mark, text="导入完成", timeout=60)
        assert "新增 1 份" in (done.text or "")
        assert await bot.store.pending_uploads() == []
        await tg.await_idle()
        assert [r.text for r in tg.messages_to(ADMIN) if r.index >= mark] == [done.text]
