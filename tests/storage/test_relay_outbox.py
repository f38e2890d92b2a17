"""Relayed-message links, the outbox, webhook update claims and knowledge-base uploads."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy.exc import IntegrityError

from bot.storage import Send, Store
from bot.storage.outbox import TERMINAL
from tests.storage.conftest import FakeClock, count_rows, new_graduate

GROUP = -1_009_876_543_210
GRADUATE_CHAT = 8_000_000_001


async def a_ticket(store: Store) -> int:
    user_id, conversation_id = await new_graduate(store, GRADUATE_CHAT)
    ticket, _ = await store.open_ticket(
        conversation_id, user_id, "policy", "normal", "requested", "summary", None
    )
    return ticket.id


async def test_a_message_is_relayed_once(store: Store) -> None:
    ticket_id = await a_ticket(store)
    assert await store.record_link(ticket_id, "to_counsellors", GRADUATE_CHAT, 10, GROUP, 500)
    assert not await store.record_link(ticket_id, "to_counsellors", GRADUATE_CHAT, 10, GROUP, 501)
    # the same ids in the other direction are another message
    assert await store.record_link(ticket_id, "to_graduate", GRADUATE_CHAT, 10, GROUP, 502)
    link = await store.link_for_source("to_counsellors", GRADUATE_CHAT, 10)
    assert link is not None
    assert (link.ticket_id, link.target_chat_id, link.target_message_id) == (ticket_id, GROUP, 500)
    back = await store.link_for_target(GROUP, 500)
    assert back is not None and back.source_message_id == 10
    assert await store.link_for_source("to_counsellors", GRADUATE_CHAT, 11) is None


async def test_claim_link_lets_one_worker_relay(store: Store) -> None:
    ticket_id = await a_ticket(store)
    results = await asyncio.gather(
        *(store.claim_link(ticket_id, "to_graduate", GROUP, 42, GRADUATE_CHAT) for _ in range(5))
    )
    assert sum(results) == 1
    pending = await store.link_for_source("to_graduate", GROUP, 42)
    assert pending is not None and pending.target_message_id is None
    assert await store.complete_link("to_graduate", GROUP, 42, 900)
    assert not await store.complete_link("to_graduate", GROUP, 42, 901)
    done = await store.link_for_source("to_graduate", GROUP, 42)
    assert done is not None and done.target_message_id == 900
    assert not await store.claim_link(ticket_id, "to_graduate", GROUP, 42, GRADUATE_CHAT)


async def test_released_claim_can_be_retried(store: Store) -> None:
    ticket_id = await a_ticket(store)
    assert await store.claim_link(ticket_id, "to_graduate", GROUP, 43, GRADUATE_CHAT)
    assert await store.release_link("to_graduate", GROUP, 43)  # the send failed
    assert await store.claim_link(ticket_id, "to_graduate", GROUP, 43, GRADUATE_CHAT)


async def test_link_to_a_missing_ticket_is_an_error_not_a_duplicate(store: Store) -> None:
    with pytest.raises(IntegrityError):
        await store.record_link(12345, "to_graduate", GROUP, 1, GRADUATE_CHAT, 2)


async def test_outbox_dedupes_leases_and_retries(store: Store, clock: FakeClock) -> None:
    ticket_id = await a_ticket(store)
    payload = {"chat_id": GRADUATE_CHAT, "text": "a counsellor replied", "at": clock.now}
    assert await store.enqueue("relay:1", "sendMessage", payload, ticket_id)
    assert not await store.enqueue("relay:1", "sendMessage", payload, ticket_id)
    assert await store.enqueue(
        "relay:2", "sendMessage", {"chat_id": 1}, not_before=clock.now + dt.timedelta(minutes=5)
    )

    first = await store.due(clock.now, 10)
    assert [item.dedupe_key for item in first] == ["relay:1"]
    assert first[0].payload["at"] == clock.now.isoformat()
    assert first[0].ticket_id == ticket_id
    assert await store.due(clock.now, 10) == []  # leased to the first caller

    item = first[0]
    retry_at = clock.now + dt.timedelta(seconds=30)
    assert await store.mark_failed(item.id, "Bad Request: chat 13812345678 not found", retry_at)
    clock.advance(seconds=30)
    again = await store.due(clock.now, 10)
    assert [i.id for i in again] == [item.id]
    assert again[0].attempts == 1
    assert again[0].last_error is not None and "13812345678" not in again[0].last_error
    assert await store.mark_sent(item.id)
    assert not await store.mark_sent(item.id)

    clock.advance(minutes=5)
    late = await store.due(clock.now, 10)
    assert [i.dedupe_key for i in late] == ["relay:2"]
    assert await store.mark_failed(late[0].id, "Forbidden: bot was blocked", clock.now, dead=True)
    clock.advance(hours=1)
    assert await store.due(clock.now, 10) == []
    assert await store.prune_outbox(clock.now) == 2


async def test_concurrent_workers_never_get_the_same_outbox_item(
    store: Store, clock: FakeClock
) -> None:
    for n in range(6):
        await store.enqueue(f"k{n}", "sendMessage", {"chat_id": n})
    batches = await asyncio.gather(*(store.due(clock.now, 2) for _ in range(5)))
    ids = [item.id for batch in batches for item in batch]
    assert len(ids) == len(set(ids)) == 6


async def test_a_lease_expires_when_the_worker_dies(store: Store, clock: FakeClock) -> None:
    await store.enqueue("k", "sendMessage", {"chat_id": 1})
    assert len(await store.due(clock.now, 5, lease=dt.timedelta(seconds=60))) == 1
    clock.advance(seconds=61)
    assert len(await store.due(clock.now, 5)) == 1


async def test_queued_items_are_leased_to_their_sender_who_keeps_them_while_sending(
    store: Store, clock: FakeClock
) -> None:
    ticket_id = await a_ticket(store)
    lease = dt.timedelta(seconds=30)
    payload = {"chat_id": 1, "at": clock.now}
    sends = [Send(f"part:{i}", "sendMessage", payload, ticket_id) for i in range(3)]
    items = await store.queue(sends, lease=lease)
    assert [i.dedupe_key for i in items] == ["part:0", "part:1", "part:2"]
    assert {i.next_attempt_at for i in items} == {clock.now + lease}
    assert items[0].payload["at"] == clock.now.isoformat()
    assert await store.queue(sends[:1], lease=lease) == [], "queued once"
    assert await store.due(clock.now + dt.timedelta(seconds=29), 10) == []

    # renewed while sending (a 429 waited out): still not due
    held = items[0].next_attempt_at
    clock.advance(seconds=20)
    ids = [i.id for i in items]
    assert await store.renew(ids, held, clock.now + lease) == set(ids)
    assert await store.due(clock.now + dt.timedelta(seconds=29), 10) == []
    assert await store.renew(ids, held, clock.now + lease) == set(), "not held until then"
    held = clock.now + lease
    assert await store.mark_sent(items[0].id)
    assert await store.renew(ids, held, clock.now + 2 * lease) == {items[1].id, items[2].id}

    # the sender died: its lease passes, the outbox job takes the rest, and a renewal by a
    # sender that was only stalled finds them no longer its own
    clock.advance(seconds=2 * 30 + 1)
    taken = await store.due(clock.now, 10)
    assert [i.id for i in taken] == [items[1].id, items[2].id]
    assert await store.renew(ids, clock.now + lease, clock.now + 2 * lease) == set()
    assert await store.postpone([items[2].id], clock.now + dt.timedelta(seconds=5)) == 1
    assert await store.move_item(items[1].id, {"chat_id": 2}, clock.now)
    (moved,) = await store.due(clock.now, 10)
    assert moved.payload == {"chat_id": 2}


async def test_a_relay_link_reserved_for_the_outbox_is_final_and_completed_once(
    store: Store,
) -> None:
    ticket_id = await a_ticket(store)
    assert await store.claim_link(ticket_id, "to_graduate", GROUP, 50, GRADUATE_CHAT, 0)
    assert not await store.claim_link(
        ticket_id, "to_graduate", GROUP, 50, GRADUATE_CHAT, 0, stale_after=dt.timedelta(0)
    ), "handed to the outbox: never relayed again"
    assert await store.complete_link("to_graduate", GROUP, 50, 777)  # the copy's id
    assert not await store.complete_link("to_graduate", GROUP, 50, 778)
    back = await store.link_for_target(GRADUATE_CHAT, 777)
    assert back is not None and back.source_message_id == 50


async def test_stranded_updates_are_the_unfinished_ones_whose_lease_ran_out(
    store: Store, clock: FakeClock
) -> None:
    """Long polling keeps an update with its claim; one left 'processing' by a dead process
    is found once its chat lease ran out (or, without one, after the stale window)."""
    lease, stale = dt.timedelta(seconds=10), dt.timedelta(minutes=5)
    update = {"update_id": 1, "message": {"text": "试用期多长？"}}
    await store.begin_update(1, (42, 0), lease, payload=update)
    await store.begin_update(2, None, lease, payload={"update_id": 2})
    await store.begin_update(3, (43, 0), lease, payload={"update_id": 3})
    await store.end_update(3, (43, 0))  # finished: never resumed, and forgotten
    await store.begin_update(4, (44, 0), lease)  # webhook mode: nothing kept
    assert await store.stranded_updates(clock.now, stale) == []
    clock.advance(seconds=11)
    assert await store.stranded_updates(clock.now, stale) == [(1, update)]
    # another process takes it over: its claim is newer than the lease's end
    assert await store.claim_update(1, clock.now, stale, chat_id=42)
    assert await store.stranded_updates(clock.now, stale) == []
    clock.advance(minutes=5)
    assert [u for u, _ in await store.stranded_updates(clock.now, stale)] == [2]
    assert await count_rows(store.db, "processed_updates", "payload IS NOT NULL") == 2


async def test_update_is_claimed_once_and_again_when_stale(store: Store, clock: FakeClock) -> None:
    stale = dt.timedelta(minutes=5)
    results = await asyncio.gather(
        *(store.claim_update(123_456_789_012, clock.now, stale) for _ in range(8))
    )
    assert sum(results) == 1
    assert not await store.claim_update(123_456_789_012, clock.now + dt.timedelta(minutes=4), stale)
    # the worker died: after the stale window another one takes over, exactly once
    later = clock.now + dt.timedelta(minutes=6)
    retries = await asyncio.gather(
        *(store.claim_update(123_456_789_012, later, stale) for _ in range(4))
    )
    assert sum(retries) == 1
    assert await store.finish_update(123_456_789_012)
    assert not await store.claim_update(123_456_789_012, later + dt.timedelta(hours=1), stale)
    clock.advance(days=2)
    assert await store.prune_updates(clock.now - dt.timedelta(days=1)) == 1


async def test_uploads_survive_until_finished(store: Store, clock: FakeClock) -> None:
    first = await store.add_upload(900, "policy.pdf", "file-abc")
    clock.advance(seconds=1)
    second = await store.add_upload(900, "notice.docx", "file-def")
    assert [u.id for u in await store.pending_uploads()] == [first, second]
    report = {"added": ["doc-1"], "failed": [], "at": clock.now}
    assert await store.finish_upload(first, "done", report)
    assert not await store.finish_upload(first, "failed", None)
    upload = await store.get_upload(first)
    assert upload is not None
    assert (upload.status, upload.file_name) == ("done", "policy.pdf")
    assert upload.report == {"added": ["doc-1"], "failed": [], "at": clock.now.isoformat()}
    assert upload.finished_at == clock.now
    assert [u.id for u in await store.pending_uploads()] == [second]
    assert await store.finish_upload(second, "failed")
    failed = await store.get_upload(second)
    assert failed is not None and failed.report is None


async def test_terminal_items_wait_for_their_own_terminal(store: Store) -> None:
    """The Bot API outbox job never takes a terminal graduate's messages; each terminal
    reads only its own graduate's, oldest first."""
    first = await store.create_user("终端同学")
    second = await store.create_user("终端同学")
    assert first.id != second.id and first.telegram_id is None
    for user, n in ((first, 1), (second, 1), (first, 2)):
        await store.enqueue(f"terminal:{user.id}:note:{n}", TERMINAL, {"text": f"{user.id}-{n}"})
    await store.enqueue("tg:1", "sendMessage", {"chat_id": 1, "text": "hi"})
    due = await store.due(store.now(), 20)
    assert [item.method for item in due] == ["sendMessage"]
    mine = await store.terminal_messages(f"terminal:{first.id}:")
    assert [item.payload["text"] for item in mine] == [f"{first.id}-1", f"{first.id}-2"]
    await store.mark_sent(mine[0].id)
    assert len(await store.terminal_messages(f"terminal:{first.id}:")) == 1
