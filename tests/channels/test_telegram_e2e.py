"""End to end over real HTTP: python-telegram-bot's Application (long polling) against the
local fake Bot API, which checks every request against the official spec."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.agent.agent import Agent
from bot.channels.telegram.app import Services, build_application
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.store import Store
from tests.fakes.telegram_server import FakeTelegram

FORUM = -1001234567890
COUNSELLOR = 501
ADMIN = 901
GRADUATE = 1001


@pytest.fixture
def tg() -> AsyncIterator[FakeTelegram]:
    with FakeTelegram() as fake:
        fake.forum(FORUM, "GradGuide counsellors")
        yield fake


@pytest.fixture
async def running(
    tg: FakeTelegram, bundled_kb: KnowledgeBase, tmp_path: Path
) -> AsyncIterator[Services]:
    settings = Settings(
        data_dir=tmp_path,
        telegram_bot_token=tg.token,
        telegram_api_url=tg.base_url,
        counsellor_chat_id=FORUM,
        counsellor_ids=[COUNSELLOR],
        admin_ids=[ADMIN],
        office_hours="daily 00:00-23:59",
    )
    db = Database(settings.database_url_or_default)
    await db.migrate()
    services = Services(
        settings=settings,
        kb=bundled_kb,
        agent=Agent(bundled_kb, bundled_kb.settings),
        store=Store(db),
        messages=Messages.load(),
    )
    application = build_application(services)
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0.0, timeout=1)
        try:
            yield services
        finally:
            await application.updater.stop()
            await application.stop()
    services.agent_pool.shutdown()
    await db.dispose()


async def test_a_question_is_answered_with_citations_and_feedback_buttons(
    tg: FakeTelegram, running: Services
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    tg.send_text(alice, "试用期最长多久？")
    answer = await tg.await_for(chat=GRADUATE, text="六个月", timeout=20)
    assert "《劳动合同法》" in (answer.text or "")
    assert answer.parse_mode == "HTML"
    assert any(data.startswith("fb:") for data in answer.callback_data)
    assert tg.calls("sendChatAction"), "a typing indicator while the bot works"


async def test_handoff_relay_and_resolve_with_a_rating(tg: FakeTelegram, running: Services) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    counsellor = tg.user(COUNSELLOR, "Li", started=True)
    tg.send_text(alice, "试用期最长多久？")
    await tg.await_for(chat=GRADUATE, text="六个月", timeout=20)

    tg.send_command(alice, "human")
    await tg.await_for(chat=GRADUATE, text="第 1 位", timeout=20)
    topics = tg.topics(FORUM)
    assert len(topics) == 1
    (topic,) = topics
    assert topic["name"].startswith("#1 ") and "张同学" in topic["name"]
    thread = topic["message_thread_id"]
    card = await tg.await_for(chat=FORUM, thread_id=thread, text="#1")
    assert "claim:1" in card.callback_data

    # while the ticket is open the graduate's messages reach the topic, not the bot
    tg.send_text(alice, "我的合同签了两年")
    copied = await tg.await_for(chat=FORUM, thread_id=thread, method="copyMessage")
    assert "两年" in (copied.text or "")

    tg.send_text(counsellor, "两年合同的试用期最多两个月。", chat=FORUM, thread_id=thread)
    relayed = await tg.await_for(chat=GRADUATE, text="两个月")
    assert "Li" not in (relayed.text or ""), "counsellors are anonymous by default"

    tg.send_command(counsellor, "resolve", chat=FORUM, thread_id=thread)
    prompt = await tg.await_for(
        chat=GRADUATE, predicate=lambda r: any(d.startswith("rate:") for d in r.callback_data)
    )
    tg.click(alice, prompt, "rate:1:5")
    await tg.await_for(chat=FORUM, thread_id=thread, text="5/5")
    ticket = await running.store.get_ticket(1)
    assert ticket is not None and ticket.status == "resolved" and ticket.rating == 5
    conversation = await running.store.load_conversation(ticket.user_id)
    assert conversation.owner == "bot"


async def test_strangers_cannot_act_as_counsellors_or_admins(
    tg: FakeTelegram, running: Services
) -> None:
    mallory = tg.user(666, "Mallory", started=True)
    refused = running.messages.get("tg_not_allowed", "zh")
    for command in ("stats", "kb", "unanswered", "kb_remove probation-zh"):
        name, _, args = command.partition(" ")
        mark = tg.mark()
        tg.send_command(mallory, name, args)
        answer = await tg.await_for(chat=666, since=mark)
        assert answer.text == refused
    assert "probation-zh" in {d.meta.id for d in running.kb.documents()}

    # a graduate's ticket; a stranger in the counsellor group cannot claim or answer it
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    tg.send_command(alice, "human")
    await tg.await_for(chat=GRADUATE, text="第 1 位", timeout=20)
    (topic,) = tg.topics(FORUM)
    thread = topic["message_thread_id"]
    tg.join(FORUM, mallory, "member")
    mark = tg.mark()
    tg.send_command(mallory, "claim", chat=FORUM, thread_id=thread)
    tg.send_text(mallory, "我是老师，把身份证号发我", chat=FORUM, thread_id=thread)
    await tg.await_for(
        chat=FORUM,
        thread_id=thread,
        since=mark,
        text=running.messages.get("grp_not_counsellor", "zh"),
    )
    await tg.await_idle()
    assert not tg.messages_to(GRADUATE, None)[-1].text or "身份证" not in (
        tg.messages_to(GRADUATE, None)[-1].text or ""
    )
    ticket = await running.store.get_ticket(1)
    assert ticket is not None and ticket.status == "queued"
