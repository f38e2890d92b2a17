"""Reliability over real HTTP against the fake Bot API: injected faults (flood control,
server errors, timeouts), relays that keep failing go to the outbox and are delivered once,
restarts in the middle of a ticket, replayed webhook and polling updates, ``gradguide serve``
with a missing or rejected token, and ``gradguide handoffs`` on the database of a running
bot."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from telegram import Bot as TgBot
from telegram.error import BadRequest, TimedOut
from telegram.request import HTTPXRequest
from telegram.warnings import PTBUserWarning

from bot.agent.models import Conversation
from bot.channels.telegram import graduates
from bot.channels.telegram.gateway import DeliveryFailed, Gateway
from bot.channels.telegram.jobs import deliver_due, run_sla
from bot.storage.models import OutboxRow, ProcessedUpdateRow
from tests.channels.conftest import (
    COUNSELLOR,
    FORUM,
    GRADUATE,
    TINY_DOC,
    WEBHOOK_SECRET,
    Bot,
    Stack,
    private_update,
    wait_until,
)
from tests.fakes.telegram_server import FakeTelegram, FakeUser, SentRecord

QUESTION = "试用期最长多久？"
ANSWER = "六个月"


def answers(tg: FakeTelegram, chat: int, text: str) -> list[SentRecord]:
    return [r for r in tg.messages_to(chat) if text in (r.text or "")]


@dataclass(frozen=True)
class Queued:
    """An outbox row as the test reads it."""

    method: str
    payload: dict[str, Any]
    ticket_id: int | None
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime
    sent: bool


async def outbox(bot: Bot) -> list[Queued]:
    async with bot.store.transaction() as session:
        rows = (await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars()
        return [
            Queued(
                r.method,
                dict(r.payload),
                r.ticket_id,
                r.status,
                r.attempts,
                r.last_error,
                r.next_attempt_at,
                r.sent_at is not None,
            )
            for r in rows
        ]


async def open_ticket(tg: FakeTelegram, graduate: FakeUser) -> int:
    """A graduate asks for a counsellor; returns the ticket topic's thread id."""
    tg.send_command(graduate, "human")
    await tg.await_for(chat=graduate.id, text="第 1 位", timeout=20)
    (topic,) = tg.topics(FORUM)
    thread = int(topic["message_thread_id"])
    await tg.await_for(chat=FORUM, thread_id=thread, text="#1", timeout=20)
    return thread


# -- faults on the Bot API ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500"])
async def test_an_answer_survives_transient_faults_and_arrives_exactly_once(
    tg: FakeTelegram, bot: Bot, kind: str
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    tg.fail("sendMessage", kind, times=2)  # type: ignore[arg-type]
    tg.send_text(alice, QUESTION)
    await tg.await_for(chat=GRADUATE, text=ANSWER, timeout=30)
    await tg.await_idle()
    assert len(answers(tg, GRADUATE, ANSWER)) == 1
    assert [f.kind for f in tg.injected] == [kind, kind]
    calls = tg.calls("sendMessage")
    assert [r.ok for r in calls] == [False, False, True]
    if kind == "429":  # Telegram's retry_after is honoured before each retry
        gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(calls)]
        assert all(gap >= tg.retry_after * 0.9 for gap in gaps), gaps
    # in the outbox before the first attempt (a crash would not lose it), retried in place,
    # marked sent: nothing left for later
    (item,) = await outbox(bot)
    assert item.status == "sent" and item.sent and item.attempts == 0


async def test_an_answer_waiting_out_a_429_longer_than_its_lease_is_not_sent_twice(
    tg: FakeTelegram, stack: Stack
) -> None:
    """The answer is in the outbox, leased to the process sending it, before the first
    attempt; while the gateway waits out a 429 longer than the lease, the lease is renewed,
    so the outbox job (every 2 s, on every replica) does not send it as well."""
    bot = await stack.start_bot(chat_lease_s=0.6)
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    tg.fail("sendMessage", "429", retry_after=3)
    tg.send_text(alice, QUESTION)
    await tg.await_for(chat=GRADUATE, text=ANSWER, timeout=30)
    await asyncio.sleep(4.5)  # two more runs of the outbox job (a long poll is never idle)
    await tg.await_idle()
    assert len(answers(tg, GRADUATE, ANSWER)) == 1
    (item,) = await outbox(bot)
    assert item.status == "sent" and item.attempts == 0


@dataclass
class ShortClient:
    bot: TgBot
    gateway: Gateway


@pytest.fixture
async def short_client(tg: FakeTelegram) -> AsyncIterator[ShortClient]:
    """A real python-telegram-bot ``Bot`` with a 0.5 s read timeout, behind the Gateway.

    The application itself waits 15 s for Telegram (``read_timeout(15)`` in
    ``build_application``), so a fault held long enough for it to time out would cost
    15 s per attempt: timeouts are tested on the gateway with a short-timeout client."""
    tg.user(GRADUATE, "张三", started=True)
    tg.timeout_hold_s = 1.5  # longer than the client waits: the client times out
    request = HTTPXRequest(read_timeout=0.5, connect_timeout=2.0, write_timeout=2.0)
    client = TgBot(
        tg.token,
        base_url=f"{tg.base_url}/bot",
        base_file_url=f"{tg.base_url}/file/bot",
        request=request,
    )
    async with client:
        yield ShortClient(client, Gateway(client, base_delay=0.05, max_delay=0.2))


async def test_a_timed_out_send_that_telegram_did_not_carry_out_is_retried_once(
    tg: FakeTelegram, short_client: ShortClient
) -> None:
    tg.fail("sendMessage", "timeout", times=1, executed=False)
    client, gateway = short_client.bot, short_client.gateway
    started = time.monotonic()
    message = await gateway.run("sendMessage", lambda: client.send_message(GRADUATE, "你好"))
    assert message.text == "你好"
    assert time.monotonic() - started < 5
    await tg.await_idle(timeout=5)
    assert [r.text for r in tg.messages_to(GRADUATE)] == ["你好"]
    assert [(f.kind, f.executed) for f in tg.injected] == [("timeout", False)]
    assert len(tg.calls("sendMessage")) == 2


async def test_a_timed_out_send_that_telegram_did_carry_out_is_delivered_twice(
    tg: FakeTelegram, short_client: ShortClient
) -> None:
    """The documented risk of retrying timeouts: Telegram may have executed the request
    whose answer never came back. sendMessage has no idempotency key, so the graduate sees
    the message twice (at-least-once delivery; the alternative would be at-most-once)."""
    tg.fail("sendMessage", "timeout", times=1, executed=True)
    client, gateway = short_client.bot, short_client.gateway
    await gateway.run("sendMessage", lambda: client.send_message(GRADUATE, "你好"))
    await tg.await_idle(timeout=5)
    assert [r.text for r in tg.messages_to(GRADUATE)] == ["你好", "你好"]
    assert [(f.kind, f.executed) for f in tg.injected] == [("timeout", True)]


async def test_the_gateway_gives_up_after_its_attempts_and_never_retries_a_bad_request(
    tg: FakeTelegram, short_client: ShortClient
) -> None:
    client, gateway = short_client.bot, short_client.gateway
    tg.fail("sendMessage", "timeout", times=10)
    with pytest.raises(DeliveryFailed) as failed:
        await gateway.run("sendMessage", lambda: client.send_message(GRADUATE, "你好"))
    assert not failed.value.permanent and isinstance(failed.value.cause, TimedOut)
    assert len(tg.calls("sendMessage")) == 4
    tg.clear_faults()

    before = len(tg.calls("sendMessage"))
    with pytest.raises(DeliveryFailed) as refused:  # a user who never wrote to the bot
        await gateway.run("sendMessage", lambda: client.send_message(4242, "你好"))
    assert refused.value.permanent
    assert len(tg.calls("sendMessage")) == before + 1
    with pytest.raises(DeliveryFailed) as bad:
        await gateway.run("sendMessage", lambda: client.send_message(GRADUATE, ""))
    assert bad.value.permanent and isinstance(bad.value.cause, BadRequest)
    await tg.await_idle(timeout=5)
    assert tg.messages_to(GRADUATE) == []


# -- relays that keep failing -------------------------------------------------------------


async def test_a_relay_that_keeps_failing_is_kept_in_the_outbox_and_delivered_once(
    tg: FakeTelegram, stack: Stack, bot: Bot
) -> None:
    # this test drives the outbox itself: the periodic job would race it
    assert bot.application.job_queue is not None
    for job in bot.application.job_queue.get_jobs_by_name("outbox"):
        job.schedule_removal()
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    thread = await open_ticket(tg, alice)
    ticket = await bot.store.get_ticket(1)
    assert ticket is not None

    tg.fail("copyMessage", "500", times=100)
    sent = tg.send_text(alice, "我的合同签了两年")
    source_id = sent["message"]["message_id"]

    async def queued() -> bool:
        return any(i.method == "copyMessage" and i.attempts for i in await outbox(bot))

    # in the outbox before its first attempt; the failed attempts leave it to the job
    await wait_until(queued, what="the failed relay in the outbox")
    (item,) = await outbox(bot)
    assert item.status == "pending" and item.ticket_id == ticket.id
    assert item.payload["from_chat_id"] == GRADUATE
    assert item.payload["message_id"] == source_id
    assert item.payload["message_thread_id"] == thread
    await wait_until(
        lambda: _has_event(bot, ticket.id, "relay_failed"), what="the failure in the trail"
    )
    events = [e.kind for e in await bot.store.events(ticket.id)]
    assert "message_from_graduate" not in events
    assert not [r for r in tg.messages_to(FORUM, thread) if "两年" in (r.text or "")]

    # Telegram still failing: the item stays, with the attempt counted
    (item,) = await outbox(bot)
    stack.clock.advance(seconds=(item.next_attempt_at - bot.store.now()).total_seconds() + 1)
    assert await deliver_due(bot.services) == 0
    (item,) = await outbox(bot)
    assert item.status == "pending" and item.attempts == 2 and item.last_error

    tg.clear_faults()
    (item,) = await outbox(bot)
    due_at = item.next_attempt_at
    if due_at.tzinfo is None:
        due_at = due_at.replace(tzinfo=dt.UTC)
    wait = due_at - bot.store.now()
    assert wait.total_seconds() > 0, "a failed item waits before its next try"
    assert await deliver_due(bot.services) == 0, "not due yet"
    stack.clock.advance(seconds=wait.total_seconds() + 1)
    assert await deliver_due(bot.services) == 1
    assert await deliver_due(bot.services) == 0
    await tg.await_idle()
    copies = [r for r in tg.messages_to(FORUM, thread) if "两年" in (r.text or "")]
    assert len(copies) == 1 and copies[0].method == "copyMessage"
    (item,) = await outbox(bot)
    assert item.status == "sent" and item.sent
    events = [e.kind for e in await bot.store.events(ticket.id)]
    assert events.count("outbox_delivered") == 1, "the audit trail shows the late delivery"


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_the_outbox_delivers_without_python_telegram_bot_warnings(
    tg: FakeTelegram, bot: Bot
) -> None:
    assert bot.application.job_queue is not None
    for job in bot.application.job_queue.get_jobs_by_name("outbox"):
        job.schedule_removal()
    tg.user(GRADUATE, "张三", started=True)
    await bot.store.enqueue("probe:1", "sendMessage", {"chat_id": GRADUATE, "text": "稍后送达"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        delivered = await deliver_due(bot.services)
    assert delivered == 1
    await tg.await_for(chat=GRADUATE, text="稍后送达", timeout=5)
    assert [str(w.message) for w in caught if issubclass(w.category, PTBUserWarning)] == []


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_a_copy_left_in_the_outbox_for_a_deleted_topic_reaches_the_group(
    tg: FakeTelegram, bot: Bot
) -> None:
    """The outbox job sends what a process left behind (its lease ran out) with the payload
    it had: a topic deleted meanwhile must not make the graduate's message a 'bad request'
    given up for good."""
    assert bot.application.job_queue is not None
    for job in bot.application.job_queue.get_jobs_by_name("outbox"):
        job.schedule_removal()
    graduate = tg.user(GRADUATE, "张三", started=True)
    original = tg.send_text(graduate, QUESTION)
    await tg.await_idle()
    topic = await bot.application.bot.create_forum_topic(FORUM, "#9 · 其他 · 张同学")
    assert await bot.application.bot.delete_forum_topic(FORUM, topic.message_thread_id)
    payload = {
        "chat_id": FORUM,
        "from_chat_id": GRADUATE,
        "message_id": original["message"]["message_id"],
        "message_thread_id": topic.message_thread_id,
    }
    await bot.store.enqueue("copy:probe", "copyMessage", payload)

    assert await deliver_due(bot.services) == 0  # the deleted topic: retargeted, not dead
    assert await deliver_due(bot.services) == 1
    copy = await tg.await_for(chat=FORUM, method="copyMessage", text=QUESTION, timeout=5)
    assert copy.message_thread_id is None, "into the group itself"
    (item,) = [i for i in await outbox(bot) if i.method == "copyMessage"]
    assert item.status == "sent" and "message_thread_id" not in item.payload


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_a_long_counsellor_reply_that_goes_to_the_outbox_arrives_whole(
    tg: FakeTelegram, stack: Stack, bot: Bot
) -> None:
    assert bot.application.job_queue is not None
    for job in bot.application.job_queue.get_jobs_by_name("outbox"):
        job.schedule_removal()
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    counsellor = tg.user(COUNSELLOR, "Li", started=True)
    thread = await open_ticket(tg, alice)
    tg.send_command(counsellor, "claim", chat=FORUM, thread_id=thread)
    await tg.await_for(chat=GRADUATE, text=bot.messages.get("tg_counsellor_joined", "zh"))
    await tg.await_idle()

    # fits one Telegram message, but not once the "counsellor says" label is added
    reply = "关于试用期的详细说明。" * 371 + "结尾标记END"
    assert 4096 - 10 < len(reply) <= 4096
    tg.fail("sendMessage", "500", times=4)  # every attempt of the relay fails
    tg.send_text(counsellor, reply, chat=FORUM, thread_id=thread)

    async def queued() -> bool:
        return any(item.attempts for item in await outbox(bot))

    await wait_until(queued, what="the failed relay in the outbox")
    tg.clear_faults()
    stack.clock.advance(seconds=3)  # the pause after a failure
    assert await deliver_due(bot.services) == 2  # with the label it takes two messages
    await tg.await_idle()
    received = "".join(
        r.text or "" for r in tg.messages_to(GRADUATE) if "关于试用期" in (r.text or "")
    )
    assert received.count("关于试用期的详细说明。") == 371
    assert received.endswith("结尾标记END")


# -- restarts -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["polling-sqlite", "polling-postgresql"], indirect=True)
async def test_an_update_a_dead_process_left_unfinished_is_taken_up_again_once(
    tg: FakeTelegram, stack: Stack
) -> None:
    """Long polling: Telegram will not deliver a fetched update again. One that a process
    claimed (its chat leased, the update kept with the claim) and never finished is taken
    up by a running process once the lease has run out, and answered once."""
    bot = await stack.start_bot(chat_lease_s=0.5)
    alice = tg.user(GRADUATE, "张三", language_code="zh", started=True)
    update_id = 810_000_100
    raw = private_update(update_id, alice, 1, QUESTION)
    # the "dead" process: claimed it, leased the chat, kept the update; nothing else
    begun = await bot.store.begin_update(
        update_id, (GRADUATE, 0), dt.timedelta(seconds=0.5), payload=raw
    )
    assert begun is not None and begun.ours
    await tg.await_for(chat=GRADUATE, text=ANSWER, timeout=20)
    await asyncio.sleep(2.5)  # the job runs every second: a second take-up would show
    await tg.await_idle()
    assert len(answers(tg, GRADUATE, ANSWER)) == 1
    async with bot.store.transaction() as session:
        row = await session.get(ProcessedUpdateRow, update_id)
        assert row is not None and row.status == "done" and row.payload is None


async def test_a_withheld_answer_leaves_its_update_open_until_the_question_is_relayed(
    bot: Bot,
) -> None:
    """A counsellor took the conversation over while the agent was thinking: the answer is
    withheld, and the question goes to the counsellor next. Until it has (the relay marks
    the update done), the update stays 'processing', so that a process dying in between
    leaves it to be taken up again rather than the question lost."""
    store = bot.store
    user, conversation = await store.load_graduate(GRADUATE, "张三")
    update_id = 810_000_200
    begun = await store.begin_update(update_id, (GRADUATE, 0), dt.timedelta(seconds=60))
    assert begun is not None and begun.ours
    state = Conversation(id=str(conversation.id))
    reply = bot.services.agent.reply(state, QUESTION)
    await store.set_owner(conversation.id, "assigned")  # the counsellor, meanwhile
    recorded = await graduates._record_exchange(
        bot.services,
        conversation.id,
        user.id,
        QUESTION,
        None,
        reply,
        state,
        update_id,
        (GRADUATE, 0),
        GRADUATE,
    )
    assert recorded is None, "withheld"
    assert await store.update_status(update_id) == "processing"
    assert update_id not in bot.services.finished


async def test_a_restart_in_the_middle_of_a_ticket_keeps_the_relay_going(
    tg: FakeTelegram, stack: Stack, bot: Bot
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    counsellor = tg.user(COUNSELLOR, "Li", started=True)
    thread = await open_ticket(tg, alice)

    bot = await stack.restart(bot)

    tg.send_text(alice, "我的合同签了两年")
    copied = await tg.await_for(chat=FORUM, thread_id=thread, method="copyMessage", timeout=20)
    assert "两年" in (copied.text or "")
    tg.send_text(counsellor, "两年合同的试用期最多两个月。", chat=FORUM, thread_id=thread)
    relayed = await tg.await_for(chat=GRADUATE, text="两个月", timeout=20)
    assert relayed.method == "sendMessage"
    await tg.await_idle()
    assert len(tg.topics(FORUM)) == 1, "no second topic"
    assert len([r for r in tg.messages_to(GRADUATE) if "两个月" in (r.text or "")]) == 1
    ticket = await bot.store.get_ticket(1)
    assert ticket is not None and ticket.status == "assigned"


# -- replayed updates ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["webhook-sqlite", "webhook-postgresql"], indirect=True)
async def test_a_replayed_webhook_update_is_processed_once_and_a_bad_secret_is_refused(
    tg: FakeTelegram, bot: Bot
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh", started=True)
    sneaky = private_update(800_000_001, alice, 11, QUESTION)
    assert await tg.apost_webhook_raw(sneaky) == 403
    assert await tg.apost_webhook_raw(sneaky, secret="wrong-secret") == 403
    await tg.await_idle()
    assert tg.messages_to(GRADUATE) == [], "an update without the secret is ignored"

    update = private_update(800_000_002, alice, 12, QUESTION)
    first = await tg.apost_webhook_raw(update, secret=WEBHOOK_SECRET)
    second = await tg.apost_webhook_raw(update, secret=WEBHOOK_SECRET)
    assert 200 <= first < 300 and 200 <= second < 300
    await tg.await_for(chat=GRADUATE, text=ANSWER, timeout=20)
    await tg.await_idle()
    assert len(answers(tg, GRADUATE, ANSWER)) == 1
    # Telegram retrying a delivery long after it was processed
    assert 200 <= await tg.apost_webhook_raw(update, secret=WEBHOOK_SECRET) < 300
    await tg.await_idle()
    assert len(answers(tg, GRADUATE, ANSWER)) == 1

    async with bot.store.transaction() as session:
        rows = (await session.execute(select(ProcessedUpdateRow))).scalars().all()
    assert [(r.update_id, r.status) for r in rows] == [(800_000_002, "done")]


@pytest.mark.parametrize("stack", ["polling-sqlite", "polling-postgresql"], indirect=True)
async def test_a_duplicated_polling_update_is_processed_once(
    tg: FakeTelegram, stack: Stack
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh", started=True)
    update = private_update(800_000_003, alice, 13, QUESTION)
    tg.raw_update(update)
    tg.raw_update(update)  # both are waiting when the bot first polls
    await stack.start_bot()
    await tg.await_for(chat=GRADUATE, text=ANSWER, timeout=20)
    await tg.await_idle()
    fetched = [
        u["update_id"]
        for r in tg.calls("getUpdates")
        if r.response is not None and r.response.get("ok")
        for u in r.response["result"]
    ]
    assert fetched.count(800_000_003) == 2, "the bot was given the update twice"
    assert len(answers(tg, GRADUATE, ANSWER)) == 1


# -- gradguide serve ----------------------------------------------------------------------


def gradguide(
    env: dict[str, str], *args: str, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "COLUMNS": "200", **env},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def test_serve_without_a_token_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    result = gradguide({"GRADGUIDE_DATA_DIR": str(tmp_path / "data")}, "serve", cwd=tmp_path)
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@dataclass(frozen=True)
class Rejected:
    result: subprocess.CompletedProcess[str]
    token: str


@pytest.fixture(scope="module")
def rejected_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rejected]:
    """``gradguide serve`` with a token the (fake) Bot API rejects, run once per module."""
    home = tmp_path_factory.mktemp("serve")
    knowledge = home / "knowledge"
    knowledge.mkdir()
    (knowledge / "tiny-probation-zh.md").write_text(TINY_DOC, encoding="utf-8")
    token = "000:bad"
    with FakeTelegram() as fake:
        result = gradguide(
            {
                "GRADGUIDE_DATA_DIR": str(home / "data"),
                "GRADGUIDE_KNOWLEDGE_DIR": str(knowledge),
                "TELEGRAM_BOT_TOKEN": token,
                "GRADGUIDE_TELEGRAM_API_URL": fake.base_url,
            },
            "serve",
            cwd=home,
        )
        assert [r.status for r in fake.calls("getMe")] == [401]
    yield Rejected(result, token)


def test_serve_with_a_rejected_token_exits_2_with_a_clear_message(
    rejected_token: Rejected,
) -> None:
    result = rejected_token.result
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Telegram rejected the bot token")
    assert "TELEGRAM_BOT_TOKEN" in last


def test_serve_with_a_rejected_token_prints_no_traceback(rejected_token: Rejected) -> None:
    assert "Traceback" not in rejected_token.result.stderr


def test_serve_with_a_rejected_token_does_not_echo_the_token(rejected_token: Rejected) -> None:
    assert rejected_token.token not in rejected_token.result.stderr


# -- gradguide handoffs -------------------------------------------------------------------


async def handoffs(
    stack: Stack, tg: FakeTelegram, *args: str, timeout: float = 60
) -> tuple[int, str, str]:
    """``gradguide handoffs ARGS`` as a new process on the running bot's database (run
    without blocking this loop, where the bot keeps working)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(stack.data_dir.parent),
        "COLUMNS": "200",
        "GRADGUIDE_DATA_DIR": str(stack.data_dir),
        "GRADGUIDE_DATABASE_URL": stack.db_url,
        "TELEGRAM_BOT_TOKEN": tg.token,
        "GRADGUIDE_TELEGRAM_API_URL": tg.base_url,
        "GRADGUIDE_COUNSELLOR_CHAT_ID": str(FORUM),
        "GRADGUIDE_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "handoffs",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(stack.data_dir.parent),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_handoffs_cli_lists_shows_replies_and_resolves_beside_a_running_bot(
    tg: FakeTelegram, stack: Stack, bot: Bot
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    tg.send_text(alice, QUESTION)
    await tg.await_for(chat=GRADUATE, text=ANSWER, timeout=20)
    thread = await open_ticket(tg, alice)

    code, out, err = await handoffs(stack, tg, "list")
    assert code == 0, err
    assert "Open tickets" in out
    (row,) = [line for line in out.splitlines() if "queued" in line]
    assert row.split("│")[1].strip() == "1" and QUESTION in row
    # the time a person reads is in the configured zone, as in the console
    assert "waiting since (Asia/Shanghai)" in out
    opened = await bot.store.get_ticket(1)
    assert opened is not None
    shanghai = opened.created_at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert row.split("│")[5].strip() == f"{shanghai:%Y-%m-%d %H:%M}"

    mark = tg.mark()
    code, out, err = await handoffs(stack, tg, "reply", "1", "两年合同的试用期最多两个月。")
    assert code == 0, err
    assert "ticket #1: reply done" in out
    relayed = await tg.await_for(chat=GRADUATE, since=mark, text="两个月", timeout=10)
    assert relayed.method == "sendMessage"
    assert relayed.text == bot.messages.get(
        "tg_counsellor_says", "zh", text="两年合同的试用期最多两个月。"
    ).replace("<b>", "").replace("</b>", "")

    code, out, err = await handoffs(stack, tg, "show", "1")
    assert code == 0, err
    assert "Ticket #1" in out
    assert QUESTION in out and "两年合同的试用期最多两个月。" in out  # the transcript
    for kind in ("topic_created", "message_to_graduate"):
        assert kind in out  # the audit trail
    assert "by cli" in out

    mark = tg.mark()
    code, out, err = await handoffs(stack, tg, "resolve", "1")
    assert code == 0, err
    prompt = await tg.await_for(
        chat=GRADUATE,
        since=mark,
        predicate=lambda r: any(d.startswith("rate:1:") for d in r.callback_data),
        timeout=10,
    )
    assert prompt.text == bot.messages.get("tg_rate_prompt", "zh")
    ticket = await bot.store.get_ticket(1)
    assert ticket is not None and ticket.status == "resolved"
    assert (await bot.store.load_conversation(ticket.user_id)).owner == "bot"
    (topic,) = tg.topics(FORUM)
    assert topic["message_thread_id"] == thread and topic["closed"]

    code, out, err = await handoffs(stack, tg, "list")
    assert code == 0 and "queued" not in out and "assigned" not in out
    code, out, err = await handoffs(stack, tg, "reply", "1", "还在吗？")
    assert code == 2 and "resolved" in err

    # the running bot answers the graduate again
    mark = tg.mark()
    tg.send_text(alice, QUESTION)
    await tg.await_for(chat=GRADUATE, since=mark, text=ANSWER, timeout=20)


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_a_ticket_answered_from_the_cli_is_not_treated_as_waiting(
    tg: FakeTelegram, stack: Stack, bot: Bot
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    await open_ticket(tg, alice)
    code, _, err = await handoffs(stack, tg, "reply", "1", "两年合同的试用期最多两个月。")
    assert code == 0, err
    await tg.await_for(chat=GRADUATE, text="两个月", timeout=10)

    stack.clock.advance(minutes=bot.services.settings.sla_remind_minutes + 5)
    mark = tg.mark()
    await run_sla(bot.services)
    await tg.await_idle()
    to_graduate = [r.text for r in tg.messages_to(GRADUATE) if r.index >= mark]
    assert to_graduate == [], "no 'sorry for the wait' after a counsellor has answered"
    code, out, _ = await handoffs(stack, tg, "list")
    assert "queued" not in out


# -- the database refuses the claim -------------------------------------------------------


@pytest.mark.parametrize("stack", ["polling-sqlite", "polling-postgresql"], indirect=True)
async def test_an_update_the_database_could_not_record_is_not_processed(
    tg: FakeTelegram, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its claim an update could be processed twice or out of order: the graduate
    is told something went wrong, once, and gets no answer to it; the next message is
    answered normally. (Long polling: a webhook update is tried again and delivered again
    instead, tests/channels/test_webhook.py.)"""
    from bot.errors import StorageError

    store = bot.store
    failures = iter([True])

    def flaky(step: Any) -> Any:
        async def once_failing(*args: Any, **kwargs: Any) -> Any:
            if next(failures, False):
                raise StorageError("the database is unavailable")
            return await step(*args, **kwargs)

        return once_failing

    # a new update is claimed by begin_update, one seen before by claim_update
    monkeypatch.setattr(store, "begin_update", flaky(store.begin_update))
    monkeypatch.setattr(store, "claim_update", flaky(store.claim_update))
    graduate = tg.user(GRADUATE, "张三", language_code="zh")
    mark = tg.mark()
    tg.send_text(graduate, QUESTION)
    await tg.await_for(chat=GRADUATE, since=mark, text=bot.messages.get("tg_error", "zh"))
    await tg.await_idle()
    sent = [r for r in tg.sent[mark:] if r.chat_id == GRADUATE and r.method == "sendMessage"]
    assert [r.text for r in sent] == [bot.messages.get("tg_error", "zh")]

    tg.send_text(graduate, QUESTION)
    await tg.await_for(chat=GRADUATE, since=mark, text=ANSWER)


async def test_a_chat_stays_leased_while_its_update_is_still_being_answered(
    tg: FakeTelegram, stack: Stack
) -> None:
    """An answer held up longer than the lease (flood control, a slow model) keeps its chat:
    the lease is renewed, so no other replica starts on the chat's next message."""
    from bot.storage.models import ChatLeaseRow

    bot = await stack.start_bot(chat_lease_s=0.6)
    gate = asyncio.Event()
    pool = bot.services.agent_pool
    loop = asyncio.get_running_loop()
    blocked = [loop.run_in_executor(pool, _wait_for, gate) for _ in range(pool._max_workers)]
    graduate = tg.user(GRADUATE, "张三", language_code="zh")
    mark = tg.mark()
    tg.send_text(graduate, QUESTION)

    async def lease() -> ChatLeaseRow | None:
        async with bot.store.transaction() as session:
            return await session.get(ChatLeaseRow, (GRADUATE, 0))

    try:
        await wait_until(lambda: _exists(lease()), what="the chat's lease")
        held = await lease()
        assert held is not None
        await asyncio.sleep(1.5)  # two and a half leases
        renewed = await lease()
        assert renewed is not None and renewed.update_id == held.update_id
        assert renewed.expires_at > held.expires_at
        assert renewed.expires_at > bot.store.now(), "still held, not expired"
    finally:
        gate.set()  # a failure must not leave the agent's threads blocked (teardown waits)
    await asyncio.gather(*blocked)
    await tg.await_for(chat=GRADUATE, since=mark, text=ANSWER)
    await wait_until(lambda: _gone(lease()), what="the lease released")


async def _has_event(bot: Bot, ticket_id: int, kind: str) -> bool:
    return any(e.kind == kind for e in await bot.store.events(ticket_id))


def _wait_for(gate: asyncio.Event) -> None:
    while not gate.is_set():
        time.sleep(0.02)


async def _exists(row: Any) -> bool:
    return (await row) is not None


async def _gone(row: Any) -> bool:
    return (await row) is None


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_an_answer_that_goes_to_the_outbox_keeps_its_buttons(
    tg: FakeTelegram, stack: Stack, bot: Bot
) -> None:
    """Telegram kept failing while the answer was sent: it arrives later from the outbox
    with 👍 / 👎 / "talk to a counsellor" still under it."""
    assert bot.application.job_queue is not None
    for job in bot.application.job_queue.get_jobs_by_name("outbox"):
        job.schedule_removal()
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    tg.fail("sendMessage", "500", times=4)  # every attempt of the answer fails
    tg.send_text(alice, QUESTION)

    async def queued() -> bool:
        return any(item.attempts for item in await outbox(bot))

    await wait_until(queued, what="the failed answer in the outbox")
    tg.clear_faults()
    stack.clock.advance(seconds=3)  # the pause after a failure
    assert await deliver_due(bot.services) == 1
    answer = await tg.await_for(chat=GRADUATE, predicate=lambda r: "试用期" in (r.text or ""))
    assert any(data.startswith("fb:") and data.endswith(":up") for data in answer.callback_data)
    assert any(data.startswith("human") for data in answer.callback_data)
