"""The fake Telegram Bot API, exercised with the real python-telegram-bot ``Bot`` over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

import httpx
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters
from telegram.request import HTTPXRequest

from tests.fakes.telegram_server import (
    EntityParseError,
    FakeTelegram,
    make_png,
    parse_html,
)
from tests.fakes.telegram_spec import load_spec

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def make_bot(tg: FakeTelegram, token: str | None = None, **request_options: float) -> Bot:
    return Bot(
        token or tg.token,
        base_url=f"{tg.base_url}/bot",
        base_file_url=f"{tg.base_url}/file/bot",
        request=HTTPXRequest(**request_options) if request_options else None,
    )


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with make_bot(tg) as real_bot:
        yield real_bot


def skip_without_spec(tg: FakeTelegram) -> None:
    if not tg.spec_available:
        pytest.skip(tg.spec_skip_reason or "Bot API spec unavailable")


class Receiver:
    """A webhook endpoint on loopback: scripted statuses, then 200; checks a secret if given."""

    def __init__(self, statuses: Sequence[int] = (), secret: str | None = None) -> None:
        self.script = list(statuses)
        self.secret = secret
        self.bodies: list[dict[str, object]] = []
        self.secrets: list[str | None] = []
        self.url = ""
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER)
        if self.secret is not None and given != self.secret:
            return web.Response(status=403)
        self.bodies.append(await request.json())
        self.secrets.append(given)
        self._arrived.set()
        return web.Response(status=self.script.pop(0) if self.script else 200)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.bodies) < count:
                self._arrived.clear()
                await self._arrived.wait()

    def texts(self) -> list[object]:
        return [body["message"]["text"] for body in self.bodies]  # type: ignore[index]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


ReceiverFactory = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def receivers() -> AsyncIterator[ReceiverFactory]:
    started: list[Receiver] = []

    async def make(statuses: Sequence[int] = (), secret: str | None = None) -> Receiver:
        receiver = await Receiver(statuses, secret).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        await receiver.stop()


# -- basics ----------------------------------------------------------------------------------------


async def test_get_me_answers_as_the_bot(bot: Bot, tg: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.id == tg.bot.id == 123456
    assert me.is_bot and me.username == "gradguide_test_bot"
    assert tg.calls("getMe")[-1].ok


async def test_send_message_is_recorded_with_entities(bot: Bot, tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice", language_code="zh", started=True)
    sent = await bot.send_message(alice.id, "你好 <b>Alice</b> 👋 <i>ok</i>", parse_mode="HTML")
    record = await tg.await_for(chat=alice, text="你好")
    assert record.method == "sendMessage"
    assert record.text == "你好 Alice 👋 ok"
    assert record.source_text == "你好 <b>Alice</b> 👋 <i>ok</i>"
    assert record.parse_mode == "HTML"
    assert record.message_id == sent.message_id
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 3, 5),
        ("italic", 12, 2),  # the emoji is two UTF-16 code units
    ]
    assert tg.messages_to(alice) == [record]
    assert tg.chat_history(alice)[-1]["text"] == "你好 Alice 👋 ok"


async def test_malformed_html_is_refused_like_telegram(bot: Bot, tg: FakeTelegram) -> None:
    tg.user(1001, "Alice", started=True)
    cases = {
        "<b>unclosed": 'can\'t find end tag corresponding to start tag "b"',
        "<foo>x</foo>": 'unsupported start tag "foo" at byte offset 0',
        "salary < 5000": 'unsupported start tag "" at byte offset 7',
        "<b>x</i>": 'unmatched end tag at byte offset 4, expected "</b>", found "</i>"',
        "x</b>": "unexpected end tag at byte offset 1",
        "<b": "unclosed start tag at byte offset 0",
    }
    for text, reason in cases.items():
        with pytest.raises(BadRequest) as caught:
            await bot.send_message(1001, text, parse_mode="HTML")
        assert caught.value.message.lower() == f"can't parse entities: {reason}".lower()
    assert tg.sent == []


def test_html_parser_follows_telegram_rules() -> None:
    text, entities = parse_html(
        '🏟 <a href="example.com/jobs">岗位</a> &lt;3 &amp; &ge; '
        '<pre><code class="language-python">x = 1</code></pre>'
        "<blockquote expandable>q</blockquote><tg-spoiler>s</tg-spoiler>"
    )
    assert text == "🏟 岗位 <3 & &ge; x = 1qs"
    assert entities == [
        {"type": "text_link", "offset": 3, "length": 2, "url": "http://example.com/jobs"},
        {"type": "pre", "offset": 16, "length": 5, "language": "python"},
        {"type": "expandable_blockquote", "offset": 21, "length": 1},
        {"type": "spoiler", "offset": 22, "length": 1},
    ]
    with pytest.raises(EntityParseError, match=r'"abac" at byte offset 13'):
        parse_html("🏟 🏟&lt;<abac>")
    with pytest.raises(EntityParseError, match=r'Empty attribute name in the tag "i"'):
        parse_html("<i =x>a</i>")
    with pytest.raises(EntityParseError, match='Tag "span" must have class "tg-spoiler"'):
        parse_html("<span>x</span>")


async def test_message_length_is_checked_after_entity_parsing(bot: Bot, tg: FakeTelegram) -> None:
    tg.user(1001, "Alice", started=True)
    await bot.send_message(1001, "a" * 4096)
    await bot.send_message(1001, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(1001, "a" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(1001, "  \n ")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(1001, "<b> </b>", parse_mode="HTML")
    assert len(tg.sent) == 2


async def test_private_chats_follow_telegram_rules(bot: Bot, tg: FakeTelegram) -> None:
    bob = tg.user(2002, "Bob")
    with pytest.raises(Forbidden, match="can't initiate conversation"):
        await bot.send_message(bob.id, "hello")
    tg.send_command(bob, "start")
    await bot.send_message(bob.id, "hello")
    assert await bot.send_chat_action(bob.id, "typing")
    with pytest.raises(BadRequest, match=r"(?i)wrong parameter action"):
        await bot.send_chat_action(bob.id, "dancing")
    tg.block(bob)
    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(bob.id, "still there?")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(3003, "nobody")


# -- getUpdates ------------------------------------------------------------------------------------


async def test_get_updates_long_poll_and_offset(bot: Bot, tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    since = len(tg.requests)
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await tg.await_call("getUpdates", since=since)  # the long poll is waiting
    started = time.monotonic()
    update = tg.send_text(alice, "/start")
    updates = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 2
    assert [u.message.text for u in updates] == ["/start"]
    assert updates[0].update_id == update["update_id"]
    assert updates[0].message.entities[0].type == "bot_command"

    again = await bot.get_updates(timeout=0)  # not confirmed yet: delivered again
    assert [u.update_id for u in again] == [update["update_id"]]
    tg.send_text(alice, "second")
    newer = await bot.get_updates(offset=update["update_id"] + 1, timeout=0)
    assert [u.message.text for u in newer] == ["second"]
    assert await bot.get_updates(offset=newer[-1].update_id + 1, timeout=0) == ()
    assert tg.pending_updates == []

    for i in range(3):
        tg.send_text(alice, f"m{i}")
    assert [u.message.text for u in await bot.get_updates(limit=2, timeout=0)] == ["m0", "m1"]

    started = time.monotonic()
    quiet = await bot.get_updates(offset=10**10, timeout=1)  # nothing new: the poll times out
    assert quiet == ()
    assert 0.8 < time.monotonic() - started < 3


async def test_a_second_bot_instance_polling_conflicts(bot: Bot, tg: FakeTelegram) -> None:
    since = len(tg.requests)
    older = asyncio.create_task(bot.get_updates(timeout=10))
    await tg.await_call("getUpdates", since=since)
    async with make_bot(tg) as replica:  # a second instance of the bot, polling too
        assert await replica.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await asyncio.wait_for(older, 5)


async def test_allowed_updates_filter_new_updates(bot: Bot, tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice", started=True)
    sent = await bot.send_message(
        alice.id,
        "ok?",
        reply_markup=InlineKeyboardMarkup.from_button(
            InlineKeyboardButton("ok", callback_data="ok")
        ),
    )
    assert await bot.get_updates(timeout=0, allowed_updates=["callback_query"]) == ()
    tg.send_text(alice, "ignored")
    tg.click(alice, sent.message_id, "ok", chat=alice)
    updates = await bot.get_updates(timeout=0)
    assert [u.callback_query.data for u in updates if u.callback_query] == ["ok"]
    assert len(updates) == 1
    assert tg.filtered_updates[0]["message"]["text"] == "ignored"


# -- forums, copies, files, buttons ----------------------------------------------------------------


async def test_forum_topic_lifecycle(bot: Bot, tg: FakeTelegram) -> None:
    forum = tg.forum(-1001000000001, "GradGuide counsellors")
    carol = tg.user(3003, "Carol")
    tg.join(forum, carol, "administrator")
    topic = await bot.create_forum_topic(forum.id, "Alice · 1001")
    thread = topic.message_thread_id
    assert [t.name for t in tg.topics(forum)] == ["Alice · 1001"]
    assert tg.topics(forum)[0]["message_thread_id"] == thread
    created = tg.chat_history(forum, thread)[0]
    assert created["forum_topic_created"] == {"name": "Alice · 1001", "icon_color": 7322096}
    assert created["message_id"] == thread

    sent = await bot.send_message(forum.id, "New case", message_thread_id=thread)
    assert sent.message_thread_id == thread and sent.is_topic_message
    assert tg.wait_for(chat=forum, thread_id=thread).text == "New case"

    tg.send_text(carol, "I'll take it", chat=forum, thread_id=thread)
    (update,) = await bot.get_updates(timeout=0)
    assert update.message.message_thread_id == thread and update.message.is_topic_message
    assert update.message.from_user.id == carol.id

    assert await bot.close_forum_topic(forum.id, thread)
    with pytest.raises(BadRequest, match=r"(?i)topic_closed"):
        await bot.send_message(forum.id, "closed?", message_thread_id=thread)
    assert await bot.reopen_forum_topic(forum.id, thread)
    assert await bot.edit_forum_topic(forum.id, thread, name="Alice · done")
    assert tg.topics(forum)[0].name == "Alice · done"

    assert await bot.delete_forum_topic(forum.id, thread)
    with pytest.raises(BadRequest, match=r"(?i)message thread not found"):
        await bot.send_message(forum.id, "anyone?", message_thread_id=thread)
    assert tg.topics(forum) == []
    assert tg.chat_history(forum, thread) == []
    with pytest.raises(BadRequest, match=r"(?i)chat is not a forum"):
        await bot.create_forum_topic(tg.group(-1002000000002, "Plain").id, "x")


async def test_copy_a_graduates_photo_into_a_topic(bot: Bot, tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    forum = tg.forum()
    topic = tg.create_topic(forum, "Alice · 1001")
    photo_message = tg.send_photo(alice, make_png(640, 480), caption="my offer letter")["message"]
    assert [(p["width"], p["height"]) for p in photo_message["photo"]] == [
        (90, 68),
        (320, 240),
        (640, 480),
    ]

    copied = await bot.copy_message(
        forum.id, alice.id, photo_message["message_id"], message_thread_id=topic.message_thread_id
    )
    record = await tg.await_for(method="copyMessage")
    assert record.message_id == copied.message_id
    assert record.chat_id == forum.id and record.message_thread_id == topic.message_thread_id
    assert record.media == "photo" and record.text == "my offer letter"
    assert record.file_ids == [size["file_id"] for size in photo_message["photo"]]
    in_topic = tg.chat_history(forum, topic.message_thread_id)[-1]
    assert in_topic["photo"] == photo_message["photo"]
    assert in_topic["from"]["id"] == tg.bot.id

    text_message = tg.send_text(alice, "谢谢")["message"]
    await bot.copy_message(forum.id, alice.id, text_message["message_id"])
    assert tg.messages_to(forum)[-1].text == "谢谢"
    with pytest.raises(BadRequest, match=r"(?i)message to copy not found"):
        await bot.copy_message(forum.id, alice.id, 999)
    forwarded = await bot.forward_message(forum.id, alice.id, text_message["message_id"])
    assert forwarded.forward_origin.sender_user.id == alice.id


async def test_file_upload_and_download_round_trip(
    bot: Bot, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # durations as timedelta, without a warning
    alice = tg.user(1001, "Alice")
    content = bytes(range(256)) * 40
    tg.send_document(alice, "简历.pdf", content, "application/pdf", caption="my CV")
    (update,) = await bot.get_updates(timeout=0)
    document = update.message.document
    assert (document.file_name, document.mime_type, document.file_size) == (
        "简历.pdf",
        "application/pdf",
        len(content),
    )
    assert update.message.caption == "my CV"
    file = await bot.get_file(document.file_id)
    assert file.file_path.endswith(".pdf")
    assert bytes(await file.download_as_bytearray()) == content

    upload = InputFile(b"report body", filename="report.txt")
    sent = await bot.send_document(alice.id, upload, caption="<i>report</i>", parse_mode="HTML")
    record = tg.sent[-1]
    assert record.media == "document" and record.text == "report"
    assert sent.caption_entities[0].type == "italic"
    uploaded = await bot.get_file(sent.document.file_id)
    assert bytes(await uploaded.download_as_bytearray()) == b"report body"

    await bot.send_document(alice.id, document.file_id)  # resent by file_id
    with pytest.raises(BadRequest, match=r"(?i)type of file mismatch"):
        await bot.send_photo(alice.id, document.file_id)
    with pytest.raises(BadRequest, match=r"(?i)wrong file_id"):
        await bot.get_file("no-such-file")
    with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
        await bot.send_photo(alice.id, InputFile(b"not an image", filename="x.jpg"))

    tg.send_voice(alice, duration=4)
    tg.send_sticker(alice, "🎓")
    voice, sticker = (u.message for u in await bot.get_updates(offset=update.update_id + 1))
    assert voice.voice.duration == dt.timedelta(seconds=4) and sticker.sticker.emoji == "🎓"
    await bot.get_file(voice.voice.file_id)
    assert tg.calls("getFile")[-1].response["result"]["file_path"].startswith("voice/")  # type: ignore[index]


async def test_callback_click_round_trip(bot: Bot, tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice", started=True)
    markup = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("同意", callback_data="consent:yes"),
                InlineKeyboardButton("不同意", callback_data="consent:no"),
            ]
        ]
    )
    sent = await bot.send_message(
        alice.id, "Share your case with a counsellor?", reply_markup=markup
    )
    record = await tg.await_for(chat=alice)
    assert record.callback_data == ["consent:yes", "consent:no"]
    assert record.button_texts == ["同意", "不同意"]

    click = tg.click(alice, record, "consent:yes")
    (update,) = await bot.get_updates(timeout=0)
    query = update.callback_query
    assert query.id == click["callback_query"]["id"]
    assert query.data == "consent:yes" and query.from_user.id == alice.id
    assert query.message.message_id == sent.message_id
    assert await query.answer("Thanks")
    assert tg.callback_answers[query.id]["text"] == "Thanks"
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query.id)
    with pytest.raises(AssertionError, match="no button with callback_data 'consent:maybe'"):
        tg.click(alice, record, "consent:maybe")

    await bot.edit_message_text("Thanks!", chat_id=alice.id, message_id=sent.message_id)
    with pytest.raises(AssertionError, match="no callback button"):  # the edit dropped them
        tg.click(alice, record, button_text="不同意")
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("Thanks!", chat_id=alice.id, message_id=sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(
            alice.id,
            "too long",
            reply_markup=InlineKeyboardMarkup.from_button(
                InlineKeyboardButton("x", callback_data="x" * 65)
            ),
        )


async def test_edit_reply_markup_and_delete(bot: Bot, tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice", started=True)
    sent = await bot.send_message(alice.id, "pick one")
    buttons = InlineKeyboardMarkup.from_button(InlineKeyboardButton("A", callback_data="a"))
    await bot.edit_message_reply_markup(alice.id, sent.message_id, reply_markup=buttons)
    assert (
        tg.message(alice, sent.message_id)["reply_markup"]["inline_keyboard"][0][0]["text"] == "A"
    )
    tg.click(alice, sent.message_id, "a", chat=alice)
    reply = await bot.send_message(
        alice.id, "a reply", reply_parameters=ReplyParameters(sent.message_id)
    )
    assert reply.reply_to_message.message_id == sent.message_id
    assert await bot.delete_message(alice.id, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(alice.id, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("gone", chat_id=alice.id, message_id=sent.message_id)
    assert [r.method for r in tg.sent] == [
        "sendMessage",
        "editMessageReplyMarkup",
        "sendMessage",
        "deleteMessage",
    ]


async def test_bot_commands_per_scope_and_language(bot: Bot, tg: FakeTelegram) -> None:
    forum = tg.forum()
    await bot.set_my_commands([BotCommand("start", "开始"), BotCommand("help", "帮助")])
    await bot.set_my_commands([BotCommand("start", "Start")], language_code="en")
    await bot.set_my_commands(
        [BotCommand("close", "Close a case")], scope=BotCommandScopeChat(forum.id)
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    assert [c.description for c in await bot.get_my_commands(language_code="en")] == ["Start"]
    scoped = await bot.get_my_commands(scope=BotCommandScopeChat(forum.id))
    assert [c.command for c in scoped] == ["close"]
    assert tg.commands({"type": "chat", "chat_id": forum.id})[0]["command"] == "close"
    assert await bot.delete_my_commands(language_code="en")
    assert await bot.get_my_commands(language_code="en") == ()
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Start", "capital letters are refused")])


def test_privacy_mode_hides_plain_group_messages_from_a_member_bot() -> None:
    with FakeTelegram() as tg:
        dave = tg.user(4004, "Dave")
        group = tg.group(-1003000000003, "Alumni", bot_status="member")
        tg.send_text(dave, "just chatting", chat=group)
        tg.send_text(dave, "/help@gradguide_test_bot", chat=group)
        forum = tg.forum()  # the bot is an administrator there: it sees everything
        tg.send_text(dave, "hello counsellors", chat=forum)
        texts = [u["message"]["text"] for u in tg.pending_updates]
        assert texts == ["/help@gradguide_test_bot", "hello counsellors"]


# -- webhooks --------------------------------------------------------------------------------------


async def test_webhook_delivery_with_secret_and_retry(
    bot: Bot, tg: FakeTelegram, receivers: ReceiverFactory
) -> None:
    receiver = await receivers(statuses=[500])
    assert await bot.set_webhook(receiver.url, secret_token="s3cret_Token-1")
    update = tg.send_text(tg.user(1001, "Alice"), "hi via webhook")
    await receiver.wait(2)  # the 500 is retried
    assert receiver.bodies[0] == receiver.bodies[1]
    assert receiver.bodies[1]["update_id"] == update["update_id"]
    assert receiver.texts() == ["hi via webhook", "hi via webhook"]
    assert receiver.secrets == ["s3cret_Token-1", "s3cret_Token-1"]
    await tg.await_idle()
    assert [a.status for a in tg.webhook_attempts] == [500, 200]

    info = await bot.get_webhook_info()
    assert info.url == receiver.url and info.pending_update_count == 0
    assert "500" in (info.last_error_message or "")
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


async def test_webhook_round_robin_across_replicas(
    bot: Bot, tg: FakeTelegram, receivers: ReceiverFactory
) -> None:
    first, second = await receivers(), await receivers()
    await bot.set_webhook(first.url)
    tg.add_webhook_replica(second.url)
    alice = tg.user(1001, "Alice")
    for i in range(4):
        tg.send_text(alice, f"m{i}")
    await first.wait(2)
    await second.wait(2)
    assert first.texts() == ["m0", "m2"]
    assert second.texts() == ["m1", "m3"]

    tg.webhook_targets = [second.url]  # a load balancer in front of the webhook URL
    tg.send_text(alice, "m4")
    await second.wait(3)
    assert second.texts()[-1] == "m4"


async def test_raw_webhook_posts_with_a_wrong_or_missing_secret(
    tg: FakeTelegram, receivers: ReceiverFactory
) -> None:
    receiver = await receivers(secret="right")
    tg.set_webhook(receiver.url, secret_token="right")
    assert await tg.apost_webhook_raw(secret="wrong") == 403
    assert await tg.apost_webhook_raw() == 403
    assert await tg.apost_webhook_raw(secret="right", url=receiver.url) == 200
    assert receiver.bodies[0]["message"]["text"] == "probe"  # type: ignore[index]


class HoldingReceiver:
    """A webhook endpoint that holds every request until the test answers it: shows what
    the fake delivers at once."""

    def __init__(self) -> None:
        self.arrived: list[tuple[str, asyncio.Future[int]]] = []
        self.in_flight: set[str] = set()
        self.most_in_flight = 0
        self.url = ""
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        text = (await request.json())["message"]["text"]
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.arrived.append((text, answer))
        self.in_flight.add(text)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        self._changed.set()
        try:
            return web.Response(status=await answer)
        finally:
            self.in_flight.discard(text)

    async def start(self) -> HoldingReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self

    def texts(self) -> list[str]:
        return [text for text, _ in self.arrived]

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.arrived) < count:
                self._changed.clear()
                await self._changed.wait()

    def answer(self, text: str, status: int = 200) -> None:
        """Answer the oldest unanswered request carrying this text."""
        future = next(f for t, f in self.arrived if t == text and not f.done())
        future.set_result(status)

    async def stop(self) -> None:
        for _, future in self.arrived:
            if not future.done():
                future.set_result(200)
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def holding() -> AsyncIterator[HoldingReceiver]:
    receiver = await HoldingReceiver().start()
    yield receiver
    await receiver.stop()


async def test_webhook_delivers_chats_at_once_up_to_max_connections(
    tg: FakeTelegram, holding: HoldingReceiver
) -> None:
    tg.set_webhook(holding.url, max_connections=2)
    for n in range(4):
        tg.send_text(tg.user(2001 + n, f"User {n}"), f"u{n}")
    await holding.wait(2)
    await asyncio.sleep(0.3)  # a third connection would have come by now
    assert holding.texts() == ["u0", "u1"]
    holding.answer("u0")
    await holding.wait(3)
    assert holding.texts()[2] == "u2"
    for text in ("u1", "u2"):
        holding.answer(text)
    await holding.wait(4)
    holding.answer("u3")
    await tg.await_idle()
    assert holding.most_in_flight == 2
    assert not tg.pending_updates


async def test_webhook_keeps_one_chat_in_order_while_other_chats_go_on(
    tg: FakeTelegram, holding: HoldingReceiver
) -> None:
    """One update of a chat at a time, in order, retries included; another chat is not
    held up by it."""
    tg.set_webhook(holding.url, max_connections=10)
    alice, bob = tg.user(2001, "Alice"), tg.user(2002, "Bob")
    for text in ("a0", "a1", "a2"):
        tg.send_text(alice, text)
    tg.send_text(bob, "b0")
    await holding.wait(2)
    assert sorted(holding.texts()) == ["a0", "b0"]  # a1 waits for a0
    holding.answer("b0")
    tg.send_text(bob, "b1")
    await holding.wait(3)
    assert holding.texts()[2] == "b1"  # Bob goes on while Alice's first is in flight
    holding.answer("b1")
    holding.answer("a0", 503)  # retried before Alice's next update
    await holding.wait(4)
    assert holding.texts()[3] == "a0"
    await asyncio.sleep(0.3)
    assert holding.texts().count("a1") == 0
    holding.answer("a0", 200)
    await holding.wait(5)
    holding.answer("a1")
    await holding.wait(6)
    holding.answer("a2")
    await tg.await_idle()
    assert [t for t in holding.texts() if t.startswith("a")] == ["a0", "a0", "a1", "a2"]
    assert [a.status for a in tg.webhook_attempts].count(503) == 1
    assert not tg.pending_updates


async def test_webhook_retries_a_timeout_and_a_refused_connection(
    tg: FakeTelegram, holding: HoldingReceiver
) -> None:
    tg.webhook_timeout_s = 0.3
    tg.webhook_targets = ["http://127.0.0.1:1/hook", holding.url]  # nothing listens on :1
    tg.set_webhook(holding.url)
    tg.send_text(tg.user(2001, "Alice"), "hello")
    await holding.wait(1)  # refused on :1, then delivered here (and held)
    await holding.wait(2, timeout=5)  # no answer within the timeout: delivered again
    holding.answer("hello", 200)
    holding.answer("hello", 200)
    await tg.await_idle()
    errors = [a.error for a in tg.webhook_attempts if not a.ok]
    assert errors[0] == "Connection refused"
    assert "Connection timed out" in errors
    assert tg.webhook_attempts[-1].ok


# -- fault injection -------------------------------------------------------------------------------


async def test_injected_429_is_retry_after(
    bot: Bot, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    tg.user(1001, "Alice", started=True)
    tg.fail("sendMessage", "429")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(1001, "hello")
    assert caught.value.retry_after == dt.timedelta(seconds=1)
    await bot.send_message(1001, "hello again")
    assert [(f.method, f.kind) for f in tg.injected] == [("sendMessage", "429")]
    assert [r.text for r in tg.sent] == ["hello again"]


async def test_injected_5xx_are_network_errors(bot: Bot, tg: FakeTelegram) -> None:
    tg.user(1001, "Alice", started=True)
    tg.fail("sendMessage", "500")
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(1001, "one")
    tg.fail(kind="502")
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.get_me()
    tg.fail("sendMessage", "500", executed=True)  # delivered, but the bot sees an error
    with pytest.raises(NetworkError):
        await bot.send_message(1001, "two")
    assert [r.text for r in tg.sent] == ["two"]
    assert [f.kind for f in tg.injected] == ["500", "502", "500"]


async def test_injected_timeout_may_or_may_not_execute(tg: FakeTelegram) -> None:
    tg.user(1001, "Alice", started=True)
    tg.timeout_hold_s = 1.0
    async with make_bot(tg, read_timeout=0.3) as slow_bot:
        tg.fail("sendMessage", "timeout", executed=True)
        with pytest.raises(TimedOut):
            await slow_bot.send_message(1001, "delivered anyway")
        tg.fail("sendMessage", "timeout")
        with pytest.raises(TimedOut):
            await slow_bot.send_message(1001, "lost")
    assert [r.text for r in tg.sent] == ["delivered anyway"]
    assert [(f.kind, f.executed) for f in tg.injected] == [("timeout", True), ("timeout", False)]


def test_fail_rate_is_reproducible_with_a_seed() -> None:
    outcomes = []
    for _ in range(2):
        with FakeTelegram() as fake, httpx.Client(trust_env=False) as client:
            fake.fail_rate(0.3, kinds=("500", "429"), seed=7)
            statuses = [client.post(f"{fake.api_url}/getMe").status_code for _ in range(40)]
            assert statuses.count(200) == 40 - len(fake.injected)
            assert set(statuses) <= {200, 429, 500}
            outcomes.append(statuses)
    assert outcomes[0] == outcomes[1]
    assert 0 < outcomes[0].count(200) < 40


# -- spec validation -------------------------------------------------------------------------------


async def test_spec_violations_are_answered_and_recorded(tg: FakeTelegram) -> None:
    skip_without_spec(tg)
    tg.user(1001, "Alice", started=True)
    async with httpx.AsyncClient(trust_env=False) as client:
        unknown_param = await client.post(
            f"{tg.api_url}/sendMessage", json={"chat_id": 1001, "text": "hi", "colour": "red"}
        )
        missing = await client.post(f"{tg.api_url}/sendMessage", data={"chat_id": "1001"})
        unknown_method = await client.post(f"{tg.api_url}/sendMesage", json={"chat_id": 1001})
        wrong_case = await client.post(f"{tg.api_url}/sendmessage", json={"chat_id": 1001})
    assert unknown_param.status_code == 400
    assert unknown_param.json()["description"] == 'Bad Request: unknown parameter "colour"'
    assert missing.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message text is empty",
    }
    assert unknown_method.status_code == wrong_case.status_code == 404
    assert unknown_method.json()["description"] == "Not Found: method not found"
    assert len(tg.violations) == 4
    assert "unknown parameter 'colour'" in tg.violations[0]
    assert "required parameter 'text' is missing" in tg.violations[1]
    assert "unknown method 'sendMesage'" in tg.violations[2]
    assert "spells it 'sendMessage'" in tg.violations[3]
    assert tg.sent == []
    with pytest.raises(AssertionError, match="4 Bot API violation"):
        tg.assert_no_violations()
    tg.expect_violations()


def test_a_violation_fails_the_with_block() -> None:
    loaded = load_spec()
    if loaded.spec is None:
        pytest.skip(loaded.skip_reason or "Bot API spec unavailable")
    with pytest.raises(AssertionError, match="unknown parameter 'verbose'"):  # noqa: SIM117
        with FakeTelegram() as fake:
            httpx.post(f"{fake.api_url}/getMe", data={"verbose": "1"}, trust_env=False)


async def test_unimplemented_methods_are_listed(bot: Bot, tg: FakeTelegram) -> None:
    tg.user(1001, "Alice", started=True)
    with pytest.raises(NetworkError, match="Not Implemented"):
        await bot.send_dice(1001)
    assert tg.unimplemented == ["sendDice"]


async def test_returned_objects_use_only_spec_fields(
    bot: Bot, tg: FakeTelegram, receivers: ReceiverFactory
) -> None:
    skip_without_spec(tg)
    spec = tg.spec
    assert spec is not None
    alice = tg.user(1001, "Alice", last_name="Li", username="alice_li", language_code="zh")
    carol = tg.user(3003, "Carol")
    forum = tg.forum(username="gradguide_counsellors", admins=[carol])
    tg.send_command(alice, "start", "from_campus")
    tg.send_photo(alice, caption="offer")
    tg.send_voice(alice)
    tg.send_sticker(alice)
    doc = tg.send_document(alice, "cv.docx", b"PK\x03\x04 docx", caption="CV")["message"]
    topic = await bot.create_forum_topic(forum.id, "Alice · 1001", icon_color=16766590)
    tg.send_text(carol, "on it", chat=forum, thread_id=topic.message_thread_id)
    markup = InlineKeyboardMarkup.from_row(
        [
            InlineKeyboardButton("Yes", callback_data="y"),
            InlineKeyboardButton("Guide", url="https://example.com/guide"),
        ]
    )
    sent = await bot.send_message(
        forum.id,
        '<b>Case</b> <a href="https://example.com">link</a>',
        parse_mode="HTML",
        message_thread_id=topic.message_thread_id,
        reply_markup=markup,
    )
    tg.click(carol, sent, "y")
    updates = await bot.get_updates(timeout=0)
    assert len(updates) == 7
    await bot.copy_message(
        forum.id, alice.id, doc["message_id"], message_thread_id=topic.message_thread_id
    )
    await bot.forward_message(forum.id, alice.id, doc["message_id"])
    await bot.edit_message_text("Case (taken)", chat_id=forum.id, message_id=sent.message_id)
    await bot.send_photo(alice.id, make_png(32, 32), has_spoiler=True)
    await bot.send_audio(alice.id, InputFile(b"ID3 audio", filename="talk.mp3"), duration=3)
    await bot.send_video(alice.id, InputFile(b"\x00\x00\x00 ftyp", filename="v.mp4"))
    await bot.get_file(doc["document"]["file_id"])
    await bot.get_chat(alice.id)
    await bot.get_chat(forum.id)
    for user_id in (tg.bot.id, carol.id, alice.id):
        await bot.get_chat_member(forum.id, user_id)
    await bot.set_my_commands([BotCommand("start", "开始")])
    await bot.get_my_commands()
    receiver = await receivers(statuses=[502])
    await bot.set_webhook(receiver.url, allowed_updates=["message"], secret_token="x")
    tg.send_text(alice, "via webhook")
    await receiver.wait(2)
    await tg.await_idle()
    await bot.get_webhook_info()
    await bot.delete_webhook()

    checked = [r for r in tg.requests if r.ok]
    methods = {r.method for r in checked}
    assert {"getUpdates", "sendMessage", "getChatMember", "getWebhookInfo", "getChat"} <= methods
    problems = [
        problem
        for record in checked
        for problem in spec.check_result(record.method, record.response["result"])  # type: ignore[index]
    ]
    assert problems == []
    assert tg.violations == []
    messages = [
        record.response["result"]  # type: ignore[index]
        for record in checked
        if record.method.startswith(("send", "forward", "edit"))
    ]
    for data in messages:  # python-telegram-bot finds no field it does not know
        assert Message.de_json(data, bot).api_kwargs == {}


def test_without_the_spec_the_fake_still_works(tmp_path: object) -> None:
    missing = f"{tmp_path}/absent/api.min.json"
    with FakeTelegram(spec_path=missing) as fake, httpx.Client(trust_env=False) as client:
        assert not fake.spec_available
        assert fake.spec_skip_reason == (f"{missing} not found: Bot API request validation skipped")
        fake.user(1001, "Alice", started=True)
        assert client.get(f"{fake.api_url}/getMe").json()["result"]["is_bot"] is True
        reply = client.post(
            f"{fake.api_url}/sendMessage",
            data={"chat_id": "1001", "text": "hi", "reply_markup": '{"inline_keyboard": []}'},
        )
        assert reply.json()["result"]["message_id"] == 1
        assert fake.violations == []


# -- plumbing --------------------------------------------------------------------------------------


async def test_a_wrong_token_is_unauthorized(tg: FakeTelegram) -> None:
    with pytest.raises(InvalidToken):
        async with make_bot(tg, token="654321:WRONG-token"):
            pass
    async with httpx.AsyncClient(trust_env=False) as client:
        reply = await client.post(f"{tg.base_url}/bot654321:WRONG-token/getMe")
    assert reply.status_code == 401
    assert reply.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_every_request_encoding_is_understood() -> None:
    with FakeTelegram() as tg, httpx.Client(trust_env=False) as client:
        alice = tg.user(1001, "Alice", started=True)
        markup = '{"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}'
        client.get(f"{tg.api_url}/sendMessage", params={"chat_id": "1001", "text": "query"})
        client.post(
            f"{tg.api_url}/sendMessage",
            data={"chat_id": "1001", "text": "form", "reply_markup": markup},
        )
        client.post(
            f"{tg.api_url}/sendMessage",
            json={"chat_id": "1001", "text": "json", "disable_notification": True},
        )
        client.post(
            f"{tg.api_url}/sendDocument?chat_id=1001",
            data={"caption": "multipart"},
            files={"document": ("notes.txt", b"notes", "text/plain")},
        )
        client.post(
            f"{tg.api_url}/sendPhoto",
            data={"chat_id": "1001", "photo": "attach://picture", "reply_markup": markup},
            files={"picture": ("p.png", make_png(8, 8), "image/png")},
        )
        last = tg.wait_for(method="sendPhoto", chat=alice, timeout=5)
        assert [r.text for r in tg.sent] == ["query", "form", "json", "multipart", None]
        assert tg.sent[1].callback_data == ["a"] and last.callback_data == ["a"]
        assert tg.sent[3].media == "document" and last.media == "photo"
        form = tg.calls("sendMessage")[1]
        assert form.params["chat_id"] == 1001 and isinstance(form.params["reply_markup"], dict)
        assert tg.calls("sendMessage")[2].params["disable_notification"] is True
        assert list(tg.calls("sendPhoto")[0].attachments) == ["picture"]
        with pytest.raises(AssertionError, match=r"timed out after 0.2s.*\n.*sent \(5 records"):
            tg.wait_for(text="never sent", timeout=0.2)


# -- the real Application, as end-to-end tests will run it -----------------------------------------


async def greet(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message and update.effective_user
    name = update.effective_user.first_name
    await update.effective_message.reply_text(f"欢迎 <b>{name}</b>", parse_mode="HTML")


async def shout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message and update.effective_message.text
    await update.effective_message.reply_text(update.effective_message.text.upper())


def build_application(tg: FakeTelegram) -> Application:  # type: ignore[type-arg]
    application = (
        Application.builder()
        .token(tg.token)
        .base_url(f"{tg.base_url}/bot")
        .base_file_url(f"{tg.base_url}/file/bot")
        .build()
    )
    application.add_handler(CommandHandler("start", greet))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, shout))
    return application


async def test_a_real_application_polls_and_replies(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    async with build_application(tg) as application:
        assert application.updater is not None
        await application.start()
        await application.updater.start_polling(poll_interval=0, timeout=5)
        try:
            tg.send_command(alice, "start")
            welcome = await tg.await_for(chat=alice)
            assert welcome.text == "欢迎 Alice" and welcome.entities[0]["type"] == "bold"
            mark = tg.mark()
            tg.send_text(alice, "hello")
            assert (await tg.await_for(chat=alice, since=mark)).text == "HELLO"
            await tg.await_idle()
        finally:
            await application.updater.stop()
            await application.stop()
    assert [r.method for r in tg.requests[:3]] == ["getMe", "deleteWebhook", "getUpdates"]
    assert tg.pending_updates == []


async def test_a_real_application_behind_the_webhook(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    async with build_application(tg) as application:
        assert application.updater is not None
        await application.start()
        await application.updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="telegram",
            webhook_url=f"http://127.0.0.1:{port}/telegram",
            secret_token="S3cret",
        )
        try:
            assert tg.webhook_secret == "S3cret"
            tg.send_command(alice, "start")
            assert (await tg.await_for(chat=alice)).text == "欢迎 Alice"
            assert await tg.apost_webhook_raw(secret="wrong") == 403
            assert await tg.apost_webhook_raw() == 403
            assert [a.status for a in tg.webhook_attempts] == [200]
        finally:
            await application.updater.stop()
            await application.stop()
