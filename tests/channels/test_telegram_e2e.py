"""End to end over real HTTP: python-telegram-bot's Application (long polling) against the
local fake Bot API, which checks every request against the official spec."""

from __future__ import annotations

from tests.channels.conftest import COUNSELLOR, FORUM, GRADUATE, Bot
from tests.fakes.telegram_server import FakeTelegram


async def test_a_question_is_answered_with_citations_and_feedback_buttons(
    tg: FakeTelegram, bot: Bot
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    tg.send_text(alice, "试用期最长多久？")
    answer = await tg.await_for(chat=GRADUATE, text="六个月", timeout=20)
    assert "《劳动合同法》" in (answer.text or "")
    assert answer.parse_mode == "HTML"
    assert any(data.startswith("fb:") for data in answer.callback_data)
    assert tg.calls("sendChatAction"), "a typing indicator while the bot works"


async def test_handoff_relay_and_resolve_with_a_rating(tg: FakeTelegram, bot: Bot) -> None:
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
    ticket = await bot.store.get_ticket(1)
    assert ticket is not None and ticket.status == "resolved" and ticket.rating == 5
    conversation = await bot.store.load_conversation(ticket.user_id)
    assert conversation.owner == "bot"


async def test_strangers_cannot_act_as_counsellors_or_admins(tg: FakeTelegram, bot: Bot) -> None:
    mallory = tg.user(666, "Mallory", started=True)
    refused = bot.messages.get("tg_not_allowed", "zh")
    for command in ("stats", "kb", "unanswered", "kb_remove probation-zh"):
        name, _, args = command.partition(" ")
        mark = tg.mark()
        tg.send_command(mallory, name, args)
        answer = await tg.await_for(chat=666, since=mark)
        assert answer.text == refused
    assert "probation-zh" in {d.meta.id for d in bot.services.kb.documents()}

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
        text=bot.messages.get("grp_not_counsellor", "zh"),
    )
    await tg.await_idle()
    assert not tg.messages_to(GRADUATE, None)[-1].text or "身份证" not in (
        tg.messages_to(GRADUATE, None)[-1].text or ""
    )
    ticket = await bot.store.get_ticket(1)
    assert ticket is not None and ticket.status == "queued"
