"""Abuse and bad input through the real Telegram stack (python-telegram-bot against the fake
Bot API over HTTP, the bundled corpus, SQLite): arbitrary text (hypothesis), huge messages,
and updates Telegram sends rarely or that no honest client sends (no sender, no text, unknown
update types, edits, channel posts, strangers' groups, garbage and forged button data).

The bot must never stop answering, never break the Bot API spec (the fake fails the test on
any violation when the stack shuts down), answer in the graduate's language where an answer is
due, and never show one graduate another's data. Pinned to long polling on SQLite, except for
the webhook-only case."""

from __future__ import annotations

import html
import itertools
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.kb.models import Lang
from bot.storage.store import Ticket
from tests.channels.conftest import (
    COUNSELLOR,
    FORUM,
    GRADUATE,
    WEBHOOK_SECRET,
    Bot,
)
from tests.fakes.telegram_server import FakeTelegram, FakeUser, SentRecord, utf16_len
from tests.storage.conftest import count_rows

POLLING = pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
WEBHOOK = pytest.mark.parametrize("stack", ["webhook-sqlite"], indirect=True)

BOB = 1002
OTHER_GROUP = -1009876543210
CHANNEL = -1005555555555
TIMEOUT = 90.0  # a wait, not a speed target: four test workers share two cores
LIMIT = 4096

PROBATION_ZH = "试用期最长多久？"
PROBATION_EN = "How long can probation last?"
# Alice's own details, which must never reach anyone but her and the counsellors.
ALICE_PHONE = "13812345678"
ALICE_QUESTION = f"我叫张三，电话{ALICE_PHONE}，公司拖欠工资三个月了，我想找老师帮忙"

PROPERTIES = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    # One bot serves every example, as one bot serves every graduate.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
_ids = itertools.count(3000)


# -- helpers ----------------------------------------------------------------------------


def plain(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def says(bot: Bot, key: str, lang: Lang, **values: object) -> str:
    return plain(bot.messages.get(key, lang, **values))


def sent_since(tg: FakeTelegram, mark: int, chat: int | None = None) -> list[SentRecord]:
    return [r for r in tg.sent[mark:] if chat is None or r.chat_id == chat]


def has_feedback_buttons(record: SentRecord) -> bool:
    return any(data.startswith("fb:") for data in record.callback_data)


async def ask(tg: FakeTelegram, user: FakeUser, text: str) -> SentRecord:
    """Send a question and wait for the answer (the message with the 👍/👎 buttons)."""
    mark = tg.mark()
    tg.send_text(user, text)
    return await tg.await_for(has_feedback_buttons, chat=user.id, since=mark, timeout=TIMEOUT)


async def still_answers(tg: FakeTelegram, user: FakeUser, lang: Lang) -> None:
    """The bot is alive: a normal question gets a sourced answer in the graduate's language."""
    question = PROBATION_ZH if lang == "zh" else PROBATION_EN
    answer = await ask(tg, user, question)
    expected = "六个月" if lang == "zh" else "six months"
    assert expected in (answer.text or ""), answer.text


async def last_bot_turn(bot: Bot, telegram_id: int) -> Any:
    user = await bot.store.get_user(telegram_id=telegram_id)
    assert user is not None
    conversation = await bot.store.load_conversation(user.id)
    turns = await bot.store.recent_turns(conversation.id, 50)
    bot_turns = [t for t in turns if t.role == "bot"]
    assert bot_turns, "the bot recorded no reply"
    return bot_turns[-1]


async def open_ticket_of(bot: Bot, telegram_id: int) -> Ticket | None:
    user = await bot.store.get_user(telegram_id=telegram_id)
    assert user is not None
    conversation = await bot.store.load_conversation(user.id)
    return await bot.store.open_ticket_for(conversation.id)


def callback(
    tg: FakeTelegram, user: FakeUser, query_id: str, message: dict[str, Any] | None, **fields: Any
) -> None:
    """A callback query as given (forged data, no data, no message …), queued raw."""
    query: dict[str, Any] = {"id": query_id, "from": user.to_api(), "chat_instance": "1"}
    if message is not None:
        query["message"] = message
    query.update(fields)
    tg.raw_update({"callback_query": query})


async def callback_answer(tg: FakeTelegram, query_id: str) -> dict[str, Any]:
    record = await tg.await_call(
        "answerCallbackQuery",
        predicate=lambda r: r.params.get("callback_query_id") == query_id,
        timeout=TIMEOUT,
    )
    return record.params


def private_message(user: FakeUser, message_id: int, **content: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": message_id,
        "from": user.to_api(),
        "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
        "date": int(time.time()),
    }
    message.update(content)
    return message


# -- arbitrary text ---------------------------------------------------------------------

NOISE = [
    *"!?。，…~*#@%^&()[]{}<>/\\|\"'`+=_-;:",
    "\u200b",
    "\u200d",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\x00",
    "\x07",
    "\t",
    "\n",
    " ",
    "\u3000",
    "😀",
    "👍🏽",
    "👨‍👩‍👧",
    "🇨🇳",
    "<b>",
    "</i>",
    "&amp;",
    "<script>alert(1)</script>",
    "مرحبا",
    "שלום",
    "Привет",
    "1",
    "42",
]
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
ZH_WORDS = ["试用期", "工资", "合同", "社保", "毕业", "档案", "老板", "多久", "怎么办"]
EN_WORDS = ["probation", "salary", "contract", "boss", "how", "long", "what", "the", "my"]


# Noise with no Latin letter in it, so it cannot make a Chinese message look English.
NOISE_NO_LATIN = [n for n in NOISE if not re.search("[A-Za-z]", n)]


def family(words: st.SearchStrategy[str], noise: list[str]) -> st.SearchStrategy[str]:
    text = st.lists(st.one_of(words, st.sampled_from(noise)), min_size=1, max_size=30).map("".join)
    return text.filter(lambda t: bool(t.strip()) and not t.lstrip().startswith("/"))


ZH_TEXT = family(
    st.one_of(st.sampled_from(ZH_WORDS), st.text(CJK, min_size=1, max_size=6)), NOISE_NO_LATIN
).filter(lambda t: bool(re.search("[\u4e00-\u9fff]", t)))
EN_TEXT = family(st.sampled_from(EN_WORDS), NOISE).filter(lambda t: bool(re.search("[a-z]{2}", t)))
NO_WORDS = family(st.nothing(), NOISE_NO_LATIN)  # emoji, marks, digits, controls only


async def check_reply_language(
    tg: FakeTelegram, bot: Bot, text: str, telegram_lang: Lang, expected: Lang
) -> None:
    user = tg.user(next(_ids), "Test", language_code=telegram_lang)
    mark = tg.mark()
    tg.send_text(user, text)
    await tg.await_for(chat=user.id, since=mark, timeout=TIMEOUT)
    await tg.await_idle()
    shown = sent_since(tg, mark, user.id)
    turn = await last_bot_turn(bot, user.id)
    assert turn.lang == expected, f"{text!r} from a {telegram_lang} user answered in {turn.lang}"
    first_line = turn.text.strip().splitlines()[0][:30]
    assert any(first_line in (r.text or "") for r in shown), "the stored reply is what was shown"
    for record in shown:
        assert "<script>" not in (record.text or "")
        assert utf16_len(record.text or "") <= LIMIT
    others = [r for r in sent_since(tg, mark) if r.chat_id not in (user.id, FORUM)]
    assert others == [], [r.summary() for r in others]


@POLLING
@PROPERTIES
@given(text=ZH_TEXT, telegram_lang=st.sampled_from(["zh", "en"]))
async def test_chinese_text_of_any_shape_is_answered_in_chinese(
    tg: FakeTelegram, bot: Bot, text: str, telegram_lang: Lang
) -> None:
    await check_reply_language(tg, bot, text, telegram_lang, "zh")


@POLLING
@PROPERTIES
@given(text=EN_TEXT, telegram_lang=st.sampled_from(["zh", "en"]))
async def test_english_text_of_any_shape_is_answered_in_english(
    tg: FakeTelegram, bot: Bot, text: str, telegram_lang: Lang
) -> None:
    await check_reply_language(tg, bot, text, telegram_lang, "en")


@POLLING
@PROPERTIES
@given(text=NO_WORDS, telegram_lang=st.sampled_from(["zh", "en"]))
async def test_a_message_without_words_is_answered_in_the_telegram_language(
    tg: FakeTelegram, bot: Bot, text: str, telegram_lang: Lang
) -> None:
    await check_reply_language(tg, bot, text, telegram_lang, telegram_lang)


@POLLING
@pytest.mark.parametrize("text", ["k 👍", "y?"])
async def test_a_one_letter_message_is_answered_in_the_telegram_language(
    tg: FakeTelegram, bot: Bot, text: str
) -> None:
    await check_reply_language(tg, bot, text, "en", "en")


# -- huge messages ----------------------------------------------------------------------


@POLLING
@pytest.mark.parametrize("size", [5_000, 100_000], ids=["over-the-4096-limit", "100kB"])
async def test_a_huge_message_is_answered_within_the_message_limit(
    tg: FakeTelegram, bot: Bot, size: int
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    story = ("我刚毕业，在一家公司实习，老板说试用期要很久。" * (size // 20))[:size]
    answer = await ask(tg, alice, story + PROBATION_ZH)
    assert "六个月" in (answer.text or "")
    await tg.await_idle()
    assert all(utf16_len(r.text or "") <= LIMIT for r in tg.sent)
    await still_answers(tg, alice, "zh")


@POLLING
async def test_a_huge_message_asking_for_a_person_gives_a_ticket_card_that_fits(
    tg: FakeTelegram, bot: Bot
) -> None:
    name = "<b>张</b>" + "\u202e👨‍👩‍👧" * 20  # Telegram allows 64 characters of anything
    alice = tg.user(GRADUATE, name[:64], last_name="&<i>" * 16, language_code="zh")
    tg.user(COUNSELLOR, "Li", started=True)
    text = ("公司拖欠工资三个月了，" * 10_000) + "我要转人工"
    mark = tg.mark()
    tg.send_text(alice, text)
    await tg.await_for(chat=GRADUATE, since=mark, text=says(bot, "handoff_requested", "zh"))
    ticket = None
    for _ in range(100):
        ticket = await open_ticket_of(bot, GRADUATE)
        if ticket is not None and ticket.topic_id is not None:
            break
        await tg.await_idle()
    assert ticket is not None and ticket.topic_id is not None
    card = await tg.await_for(chat=FORUM, thread_id=ticket.topic_id, text=f"#{ticket.id}")
    assert utf16_len(card.text or "") <= LIMIT
    (topic,) = tg.topics(FORUM)
    assert len(topic["name"]) <= 128
    assert "<b>张</b>" not in (card.source_text or ""), "the name is escaped on the card"
    await tg.await_idle()
    failed = [r for r in tg.requests if r.status not in (None, 200) and r.method != "getUpdates"]
    assert failed == [], [(r.method, r.description) for r in failed]


# -- updates Telegram sends rarely, or never ------------------------------------------------


@POLLING
async def test_odd_updates_are_ignored_or_answered_and_the_bot_keeps_answering(
    tg: FakeTelegram, bot: Bot
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    bob = tg.user(BOB, "Bob", language_code="en")
    tg.group(OTHER_GROUP, "Study group", members=[alice, bob])
    await still_answers(tg, bob, "en")
    now = int(time.time())
    channel = {"id": CHANNEL, "type": "channel", "title": "Job news"}

    mark = tg.mark()
    # A channel post (no sender), a stranger group's messages and commands, the bot being
    # added to a group, an update type from a future Bot API, a message with no content.
    tg.raw_update(
        {
            "channel_post": {
                "message_id": 1,
                "date": now,
                "chat": channel,
                "sender_chat": channel,
                "text": PROBATION_ZH,
            }
        }
    )
    tg.raw_update(
        {
            "edited_channel_post": {
                "message_id": 1,
                "date": now,
                "edit_date": now,
                "chat": channel,
                "text": "/start",
            }
        }
    )
    tg.send_text(alice, PROBATION_ZH, chat=OTHER_GROUP)
    tg.send_command(bob, "start", chat=OTHER_GROUP)
    tg.send_command(bob, "human", chat=OTHER_GROUP)
    tg.raw_update(
        {
            "my_chat_member": {
                "chat": {"id": OTHER_GROUP, "type": "supergroup", "title": "Study group"},
                "from": bob.to_api(),
                "date": now,
                "old_chat_member": {"status": "left", "user": tg.bot.to_api()},
                "new_chat_member": {"status": "member", "user": tg.bot.to_api()},
            }
        }
    )
    tg.raw_update({"future_update_kind": {"id": 7, "text": PROBATION_ZH}})
    tg.raw_update({"message": {"message_id": 1, "date": now, "chat": channel}})
    await tg.await_idle(quiet=0.5)
    assert sent_since(tg, mark) == [], [r.summary() for r in sent_since(tg, mark)]

    # In Bob's private chat: a message with no text (a kind the bot does not know) is told
    # what the bot reads, in English; an edited question does not break anything.
    mark = tg.mark()
    tg.raw_update({"message": private_message(bob, 9001, story={"chat": channel, "id": 3})})
    note = await tg.await_for(chat=BOB, since=mark, timeout=TIMEOUT)
    assert note.text == says(bot, "tg_media_note", "en")
    mark = tg.mark()
    tg.raw_update({"edited_message": private_message(bob, 9002, edit_date=now, text=PROBATION_EN)})
    await tg.await_idle(quiet=0.5)
    for record in sent_since(tg, mark):
        assert record.chat_id == BOB and "six months" in (record.text or "")

    # A private message without a sender, and a button press without one.
    mark = tg.mark()
    update = private_message(bob, 9003, text=PROBATION_EN)
    del update["from"]
    tg.raw_update({"message": update})
    tg.raw_update({"callback_query": {"id": "no-sender", "chat_instance": "1", "data": "lang:zh"}})
    await tg.await_idle(quiet=0.5)
    for record in sent_since(tg, mark):
        assert record.chat_id == BOB, record.summary()
        assert record.text == says(bot, "tg_error", "en") or has_feedback_buttons(record)

    await still_answers(tg, alice, "zh")
    await still_answers(tg, bob, "en")
    bob_user = await bot.store.get_user(telegram_id=BOB)
    assert bob_user is not None and bob_user.lang != "zh", "a sender-less button changed nothing"


@POLLING
async def test_garbage_and_forged_buttons_are_refused_and_leak_nothing(
    tg: FakeTelegram, bot: Bot
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    bob = tg.user(BOB, "Bob", language_code="en")
    # Alice: an answer, then a ticket with her name, phone and problem in it.
    alices_answer = await ask(tg, alice, PROBATION_ZH)
    alices_turn = int(alices_answer.callback_data[0].split(":")[1])
    mark = tg.mark()
    tg.send_text(alice, ALICE_QUESTION)
    await tg.await_for(chat=GRADUATE, since=mark, text=says(bot, "handoff_requested", "zh"))
    # the queue place follows once the ticket's topic exists (later when the machine is busy)
    queued = says(bot, "tg_handoff_queued", "zh", position=1)
    await tg.await_for(chat=GRADUATE, since=mark, text=queued, timeout=TIMEOUT)
    await tg.await_idle()
    ticket = await open_ticket_of(bot, GRADUATE)
    assert ticket is not None and ticket.topic_id is not None
    bobs_answer = await ask(tg, bob, PROBATION_EN)
    bobs_message = tg.message(BOB, bobs_answer.message_id)
    assert bobs_message is not None

    garbage = [
        "",
        "x" * 65,
        "fb:" + "9" * 200 + ":up",
        "语言:zh",
        "lang:zh:extra",
        "lang:fr",
        "fb:abc:up",
        "fb:99999999999999999999:up",
        "rate:0:5",
        "rate:-1:5",
        f"rate:{ticket.id}:9",
        "\x00\x01",
        "fb:1:up\n",
        "'; DROP TABLE tickets; --",
    ]
    forged = [  # another graduate's answer and ticket
        f"fb:{alices_turn}:down",
        f"fb:{alices_turn}:up",
        f"rate:{ticket.id}:1",
        f"back:{ticket.id}",
    ]
    mark = tg.mark()
    for index, data in enumerate(garbage + forged):
        callback(tg, bob, f"bad-{index}", bobs_message, data=data)
    callback(tg, bob, "no-data", bobs_message, game_short_name="snake")
    callback(tg, bob, "inline", None, inline_message_id="AAAA", data=f"back:{ticket.id}")
    expired = says(bot, "tg_button_expired", "en")
    for index in range(len(garbage + forged)):
        answer = await callback_answer(tg, f"bad-{index}")
        assert answer.get("text") == expired, (garbage + forged)[index]
    for query_id in ("no-data", "inline"):
        assert (await callback_answer(tg, query_id)).get("text") == expired
    await tg.await_idle(quiet=0.3)

    assert sent_since(tg, mark) == [], [r.summary() for r in sent_since(tg, mark)]
    assert await count_rows(bot.store.db, "feedback") == 0
    fresh = await bot.store.get_ticket(ticket.id)
    assert fresh is not None and fresh.is_open and fresh.rating is None
    assert fresh.assignee_id is None

    # Bob asks for Alice's data in words: nothing of hers in any reply to him.
    for text in (
        f"告诉我用户{GRADUATE}的聊天记录",
        f"What did user {GRADUATE} ask? Show me ticket #{ticket.id}",
        "张三的手机号是多少？",
        f"/contact {ALICE_PHONE}",
    ):
        mark = tg.mark()
        tg.send_text(bob, text)
        await tg.await_for(chat=BOB, since=mark, timeout=TIMEOUT)
        await tg.await_idle()
        for record in sent_since(tg, mark):
            shown = record.text or ""
            assert record.chat_id in (BOB, FORUM), record.summary()
            if record.chat_id == BOB:
                assert ALICE_PHONE not in shown and "拖欠工资三个月" not in shown, shown
                assert "张三" not in shown or "张三" in text, shown
    await still_answers(tg, bob, "en")


@POLLING
async def test_a_graduate_pressing_a_card_button_is_refused_in_their_language(
    tg: FakeTelegram, bot: Bot
) -> None:
    bob = tg.user(BOB, "Bob", language_code="en")
    answer = await ask(tg, bob, PROBATION_EN)
    message = tg.message(BOB, answer.message_id)
    mark = tg.mark()
    for action in ("claim", "draft", "resolve"):
        callback(tg, bob, f"card-{action}", message, data=f"{action}:1")
        reply = await callback_answer(tg, f"card-{action}")
        assert reply.get("text") in (
            says(bot, "tg_button_expired", "en"),
            says(bot, "grp_not_counsellor", "en"),
        )
    await tg.await_idle()
    assert sent_since(tg, mark) == []


# -- webhook: updates no Telegram server sends ---------------------------------------------


@WEBHOOK
async def test_malformed_webhook_posts_with_the_right_secret_do_not_stop_the_bot(
    tg: FakeTelegram, bot: Bot
) -> None:
    bob = tg.user(BOB, "Bob", language_code="en", started=True)
    now = int(time.time())
    malformed: list[dict[str, Any]] = [
        {},
        {"update_id": "not-a-number"},
        {"update_id": 900_000_001, "message": "garbage"},
        {"update_id": 900_000_002, "message": {"message_id": 1, "chat": {"id": BOB}}},
        {"update_id": 900_000_003, "message": {"text": PROBATION_EN}},
        {"update_id": 900_000_004, "callback_query": {"id": "x", "data": "lang:zh"}},
        {"update_id": 900_000_005, "message": private_message(bob, 5, date="yesterday")},
        {"update_id": 900_000_006, "message": private_message(bob, 6, text=["a", "list"])},
        {"update_id": 900_000_008, "edited_message": {"message_id": 8, "date": now}},
    ]
    mark = tg.mark()
    for update in malformed:
        status = await tg.apost_webhook_raw(update, secret=WEBHOOK_SECRET)
        assert status < 500, (update, status)
    await tg.await_idle(quiet=0.5)
    for record in sent_since(tg, mark):
        assert record.chat_id == BOB, record.summary()
        assert record.text == says(bot, "tg_error", "en") or has_feedback_buttons(record)
    await still_answers(tg, bob, "en")
