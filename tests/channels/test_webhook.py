"""``gradguide serve``'s webhook receiver (bot/channels/telegram/webhook.py), in process,
against the fake Bot API: the secret and the body are checked, an update is answered only
once it is processed, an update that cannot be claimed gets 503 and is delivered again
(the graduate is told once), a replayed update is processed once, an update and a relay
left by a dead replica are taken over after its chat lease, and stopping finishes the
updates in process."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from bot.channels.telegram.context import UPDATE_STALE_AFTER
from bot.storage.models import ProcessedUpdateRow
from bot.storage.store import HANDED_TO_OUTBOX
from tests.channels.conftest import (
    COUNSELLOR,
    FORUM,
    GRADUATE,
    WEBHOOK_SECRET,
    Bot,
    Stack,
    private_update,
)
from tests.fakes.telegram_server import FakeTelegram, SentRecord

QUESTION = "试用期最长多久？"
ANSWER = "六个月"

pytestmark = pytest.mark.parametrize(
    "stack", ["webhook-sqlite", "webhook-postgresql"], indirect=True
)


def answers(tg: FakeTelegram, chat: int, text: str) -> list[SentRecord]:
    return [r for r in tg.messages_to(chat) if text in (r.text or "")]


def webhook_url(bot: Bot) -> str:
    assert bot.webhook is not None and bot.webhook.port is not None
    return f"http://127.0.0.1:{bot.webhook.port}/telegram"


async def post(
    bot: Bot, body: bytes, *, secret: str | None = WEBHOOK_SECRET, content_type: str = ""
) -> httpx.Response:
    headers = {"Content-Type": content_type or "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with httpx.AsyncClient(trust_env=False, timeout=20) as client:
        return await client.post(webhook_url(bot), content=body, headers=headers)


async def statuses(bot: Bot) -> list[tuple[int, str]]:
    async with bot.store.transaction() as session:
        rows = (await session.execute(select(ProcessedUpdateRow))).scalars().all()
        return sorted((r.update_id, r.status) for r in rows)


def block_the_agent(bot: Bot) -> tuple[asyncio.Event, list[asyncio.Future[None]]]:
    """Every agent thread waits for the gate: questions are not answered until it opens."""
    gate = asyncio.Event()
    pool = bot.services.agent_pool
    loop = asyncio.get_running_loop()
    blocked = [loop.run_in_executor(pool, _wait_for, gate) for _ in range(pool._max_workers)]
    return gate, blocked


def _wait_for(gate: asyncio.Event) -> None:
    while not gate.is_set():
        time.sleep(0.02)


# -- the HTTP contract --------------------------------------------------------------------


async def test_a_wrong_or_missing_secret_is_refused_with_403(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh", started=True)
    update = private_update(810_000_001, alice, 11, QUESTION)
    assert await tg.apost_webhook_raw(update) == 403
    assert await tg.apost_webhook_raw(update, secret="wrong-secret") == 403
    assert await tg.apost_webhook_raw(update, secret=WEBHOOK_SECRET[:-1]) == 403
    # refused before the body is even read: not JSON, still 403
    assert (await post(bot, b"not json", secret="wrong")).status_code == 403
    await tg.await_idle()
    assert tg.messages_to(GRADUATE) == []
    assert await statuses(bot) == []


async def test_a_malformed_body_is_refused_with_400_and_no_traceback(
    tg: FakeTelegram, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for body in (b"{not json", b"\xff\xfe", b"[1, 2, 3]", b'{"no": "update_id"}', b""):
        response = await post(bot, body)
        assert response.status_code == 400, body
        assert b"Traceback" not in response.content
    assert (await post(bot, b"{}", content_type="text/plain")).status_code == 415
    async with httpx.AsyncClient(trust_env=False) as client:
        got = await client.get(webhook_url(bot))
        assert got.status_code == 405 and b"Traceback" not in got.content
        elsewhere = webhook_url(bot).replace("/telegram", "/other")
        assert (await client.post(elsewhere, content=b"{}")).status_code == 404
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
    await tg.await_idle()
    assert tg.sent == [] and await statuses(bot) == []


async def test_an_update_is_answered_200_only_after_its_reply_was_sent(
    tg: FakeTelegram, bot: Bot
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh", started=True)
    gate, blocked = block_the_agent(bot)
    delivery = asyncio.ensure_future(
        tg.apost_webhook_raw(
            private_update(810_000_002, alice, 12, QUESTION), secret=WEBHOOK_SECRET
        )
    )
    await asyncio.sleep(1.0)
    assert not delivery.done(), "answered before the update was processed"
    assert answers(tg, GRADUATE, ANSWER) == []
    gate.set()
    await asyncio.gather(*blocked)
    assert await delivery == 200
    assert len(answers(tg, GRADUATE, ANSWER)) == 1, "the reply is sent before the 200"
    assert await statuses(bot) == [(810_000_002, "done")]


async def test_a_replayed_update_is_processed_once_even_while_the_first_is_in_process(
    tg: FakeTelegram, bot: Bot
) -> None:
    """Telegram delivering an update again (its first delivery timed out) while the first
    is still being processed: the second waits for the first (not 200 at once: the first
    replica might die), then both are answered 200, and the graduate is answered once."""
    alice = tg.user(GRADUATE, "张三", language_code="zh", started=True)
    update = private_update(810_000_003, alice, 13, QUESTION)
    gate, blocked = block_the_agent(bot)
    first = asyncio.ensure_future(tg.apost_webhook_raw(update, secret=WEBHOOK_SECRET))
    await asyncio.sleep(0.5)
    second = asyncio.ensure_future(tg.apost_webhook_raw(update, secret=WEBHOOK_SECRET))
    await asyncio.sleep(0.5)
    assert not second.done()
    gate.set()
    await asyncio.gather(*blocked)
    assert (await first, await second) == (200, 200)
    assert await tg.apost_webhook_raw(update, secret=WEBHOOK_SECRET) == 200  # long after
    await tg.await_idle()
    assert len(answers(tg, GRADUATE, ANSWER)) == 1
    assert await statuses(bot) == [(810_000_003, "done")]


# -- the database is down ------------------------------------------------------------------


class Outage:
    """Every statement fails while ``down`` (as when PostgreSQL is stopped), on whichever
    engine and path the store takes to the database (all engines of this process)."""

    def __init__(self) -> None:
        self.down = False
        self.refused = 0
        event.listen(Engine, "before_cursor_execute", self._refuse)

    def _refuse(self, *args: Any) -> None:
        if self.down:
            self.refused += 1
            raise OSError("the database is unavailable (test)")

    def end(self) -> None:
        self.down = False
        event.remove(Engine, "before_cursor_execute", self._refuse)


@pytest.fixture
async def slow_retry_bot(stack: Stack) -> AsyncIterator[Bot]:
    yield await stack.start_bot(webhook_retry_s=2.0)


@pytest.fixture
def outage(slow_retry_bot: Bot) -> Iterator[Outage]:
    made = Outage()
    yield made
    made.end()


async def test_while_the_database_is_down_an_update_gets_503_and_is_answered_once_it_is_back(
    tg: FakeTelegram, slow_retry_bot: Bot, outage: Outage
) -> None:
    bot = slow_retry_bot
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    sorry = bot.messages.get("tg_error_later", "zh")  # Telegram delivers it again
    outage.down = True
    mark = tg.mark()
    update = tg.send_text(alice, QUESTION)

    def refused() -> int:
        return sum(a.status == 503 for a in tg.webhook_attempts)

    deadline = time.monotonic() + 20
    while refused() < 3:  # Telegram's first delivery and two more, each tried for 2 s
        assert time.monotonic() < deadline, tg.webhook_attempts
        await asyncio.sleep(0.1)
    assert [r.text for r in tg.sent[mark:]] == [sorry], "told once, not once per delivery"
    assert update["update_id"] in [u["update_id"] for u in tg.pending_updates]

    outage.down = False
    await tg.await_for(chat=GRADUATE, since=mark, text=ANSWER, timeout=20)
    await tg.await_idle(quiet=1.0)
    told = [r.text or "" for r in tg.sent[mark:] if r.chat_id == GRADUATE]
    assert len(told) == 2 and told[0] == sorry and ANSWER in told[1], told  # once each
    assert tg.webhook_attempts[-1].ok and tg.pending_updates == []
    assert await statuses(bot) == [(update["update_id"], "done")]


async def test_a_short_database_outage_is_absorbed_without_telegram_delivering_again(
    tg: FakeTelegram, slow_retry_bot: Bot, outage: Outage
) -> None:
    """Down for less than ``webhook_retry_s``: the update is tried again in process and
    answered, with no apology and no 503."""
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    outage.down = True
    mark = tg.mark()
    tg.send_text(alice, QUESTION)
    await asyncio.sleep(0.7)
    assert outage.refused, "the update was tried while the database was down"
    outage.down = False
    await tg.await_for(chat=GRADUATE, since=mark, text=ANSWER, timeout=20)
    await tg.await_idle()
    assert [r.text for r in tg.sent[mark:] if r.chat_id == GRADUATE] == [
        r.text for r in answers(tg, GRADUATE, ANSWER)
    ]
    assert [a.status for a in tg.webhook_attempts] == [200]


# -- a replica died mid-update -------------------------------------------------------------


async def test_a_reply_left_by_a_dead_replica_is_relayed_once_after_its_chat_lease(
    tg: FakeTelegram, stack: Stack
) -> None:
    """A counsellor's reply that a replica had claimed (the update, the topic's chat lease
    and the relay's link) when it died: Telegram delivers it again; it is refused (503)
    while the lease runs, then taken over, and the graduate gets it once."""
    bot = await stack.start_bot(chat_lease_s=1.0, webhook_retry_s=0.3)
    store = bot.store
    graduate = tg.user(GRADUATE, "张三", language_code="zh")
    teacher = tg.user(COUNSELLOR, "陈老师", started=True)
    tg.send_command(graduate, "human")
    await tg.await_for(chat=GRADUATE, text="第 1 位", timeout=20)
    (topic,) = tg.topics(FORUM)
    thread = int(topic["message_thread_id"])
    await tg.await_for(chat=FORUM, thread_id=thread, text="#1", timeout=20)
    ticket = await store.ticket_by_topic(FORUM, thread)
    assert ticket is not None
    await tg.await_idle()

    url = tg.webhook_url
    assert url is not None
    tg.delete_webhook()  # the reply waits at Telegram while the "dead replica" claims it
    update = tg.send_text(teacher, "老师的回复", chat=FORUM, thread_id=thread)
    update_id, message_id = update["update_id"], update["message"]["message_id"]
    now = store.now()
    lease = dt.timedelta(seconds=1.0)
    assert await store.claim_update(update_id, now, UPDATE_STALE_AFTER, chat_id=FORUM)
    assert await store.lease_chat((FORUM, thread), update_id, now, lease)
    assert await store.claim_link(ticket.id, "to_graduate", FORUM, message_id, GRADUATE)
    mark = tg.mark()
    tg.set_webhook(url, secret_token=WEBHOOK_SECRET)

    await tg.await_for(chat=GRADUATE, since=mark, text="老师的回复", timeout=20)
    await tg.await_idle(quiet=0.5)
    assert len([r for r in tg.sent[mark:] if "老师的回复" in (r.text or "")]) == 1
    tried = [a.status for a in tg.webhook_attempts if a.update_id == update_id]
    assert 503 in tried and tried[-1] == 200, tried
    assert (update_id, "done") in await statuses(bot)

    # a completed link never relays again, however old
    stack.clock.advance(hours=1)
    assert not await store.claim_link(
        ticket.id, "to_graduate", FORUM, message_id, GRADUATE, stale_after=dt.timedelta(0)
    )


async def test_an_unfinished_link_is_taken_over_once_and_a_handed_over_one_never(
    tg: FakeTelegram, stack: Stack
) -> None:
    bot = await stack.start_bot()
    store = bot.store
    graduate = tg.user(GRADUATE, "张三", language_code="zh")
    tg.send_command(graduate, "human")
    await tg.await_for(chat=GRADUATE, text="第 1 位", timeout=20)
    await tg.await_idle()
    (ticket,) = await store.list_tickets(limit=10)
    stale = dt.timedelta(seconds=30)

    def claim(message_id: int) -> Any:
        return store.claim_link(
            ticket.id, "to_graduate", FORUM, message_id, GRADUATE, stale_after=stale
        )

    assert await claim(9001)
    assert not await claim(9001), "reserved a moment ago: someone may be sending it"
    stack.clock.advance(seconds=31)
    assert sum(await asyncio.gather(*(claim(9001) for _ in range(4)))) == 1
    assert not await claim(9001)

    assert await claim(9002)
    assert await store.complete_link("to_graduate", FORUM, 9002, HANDED_TO_OUTBOX)
    stack.clock.advance(hours=1)
    assert not await claim(9002), "the outbox sends it"


async def test_an_update_claim_goes_stale_when_its_chat_lease_runs_out(
    tg: FakeTelegram, bot: Bot
) -> None:
    store = bot.store
    now = store.now()
    lease = dt.timedelta(seconds=60)
    update_id, chat = 810_000_010, (GRADUATE, 0)
    assert await store.claim_update(update_id, now, UPDATE_STALE_AFTER, chat_id=GRADUATE)
    assert await store.lease_chat(chat, update_id, now, lease)
    later = now + dt.timedelta(seconds=59)
    assert not await store.claim_update(update_id, later, UPDATE_STALE_AFTER)
    assert await store.lease_chat(chat, update_id, later, lease)  # renewed while it runs
    assert not await store.claim_update(
        update_id, now + dt.timedelta(seconds=90), UPDATE_STALE_AFTER
    )
    expired = later + dt.timedelta(seconds=61)
    taken = await asyncio.gather(
        *(store.claim_update(update_id, expired, UPDATE_STALE_AFTER) for _ in range(4))
    )
    assert sum(taken) == 1, "taken over once"
    assert await store.update_status(update_id) == "processing"
    # an update that never held a chat lease (its worker waited for the chat) keeps the
    # five-minute fallback
    assert await store.claim_update(810_000_011, now, UPDATE_STALE_AFTER)
    assert not await store.claim_update(
        810_000_011, now + dt.timedelta(minutes=4), UPDATE_STALE_AFTER
    )
    assert await store.claim_update(810_000_011, now + dt.timedelta(minutes=6), UPDATE_STALE_AFTER)
    assert await store.finish_update(810_000_011)
    assert await store.update_status(810_000_011) == "done"
    assert await store.update_status(810_000_012) is None


# -- stopping -----------------------------------------------------------------------------


async def test_stopping_finishes_the_updates_in_process_and_takes_no_more(
    tg: FakeTelegram, bot: Bot
) -> None:
    alice = tg.user(GRADUATE, "张三", language_code="zh", started=True)
    gate, blocked = block_the_agent(bot)
    url = webhook_url(bot)
    delivery = asyncio.ensure_future(
        tg.apost_webhook_raw(
            private_update(810_000_020, alice, 20, QUESTION), secret=WEBHOOK_SECRET
        )
    )
    await asyncio.sleep(0.5)
    assert bot.webhook is not None and bot.webhook.in_flight == 1
    stopping = asyncio.ensure_future(bot.webhook.stop())
    await asyncio.sleep(0.5)
    assert not stopping.done(), "waits for the update in process"
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.post(url, content=b"{}")
    gate.set()
    await asyncio.gather(*blocked)
    assert await delivery == 200
    await stopping
    assert len(answers(tg, GRADUATE, ANSWER)) == 1
