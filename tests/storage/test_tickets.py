"""Tickets: one open per conversation, claim races, transfers, closing, the queue, SLA
marks and ratings."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, cast

import pytest
from sqlalchemy.exc import IntegrityError

from bot.storage import Store, Ticket
from tests.storage.conftest import FakeClock, claim_as, count_rows, new_graduate

TRANSCRIPT = [{"role": "graduate", "text": "公司拖欠工资怎么办？", "at": "2026-11-26T09:00:00Z"}]


async def open_for(
    store: Store, telegram_id: int, priority: Any = "normal", **extra: Any
) -> Ticket:
    user_id, conversation_id = await new_graduate(store, telegram_id)
    ticket, created = await store.open_ticket(
        conversation_id,
        user_id,
        "rights",
        priority,
        "requested",
        "unpaid wages",
        "draft",
        ["doc-1"],
        TRANSCRIPT,
        **extra,
    )
    assert created
    return ticket


async def test_open_ticket_records_everything(store: Store, clock: FakeClock) -> None:
    user_id, conversation_id = await new_graduate(store, 1)
    at = clock.now.astimezone(dt.timezone(dt.timedelta(hours=8)))
    transcript = [{"role": "graduate", "text": "hi", "at": at}]
    ticket, created = await store.open_ticket(
        conversation_id, user_id, "crisis", "urgent", "crisis", "summary", None, [], transcript
    )
    assert created
    assert ticket.status == "queued"
    assert ticket.open_conversation_id == conversation_id
    assert ticket.is_open
    assert ticket.created_at == clock.now
    assert ticket.transcript == [{"role": "graduate", "text": "hi", "at": at.isoformat()}]
    assert (await store.load_conversation(user_id)).owner == "queued"
    events = await store.events(ticket.id)
    assert [(event.kind, event.actor) for event in events] == [("created", "bot")]
    assert events[0].data == {"category": "crisis", "priority": "urgent"}
    assert await store.open_ticket_for(conversation_id) == ticket


async def test_one_open_ticket_per_conversation_under_a_race(store: Store) -> None:
    user_id, conversation_id = await new_graduate(store, 1)
    results = await asyncio.gather(
        *(
            store.open_ticket(
                conversation_id, user_id, "policy", "normal", "low_confidence", f"try {n}", None
            )
            for n in range(10)
        )
    )
    assert sum(created for _, created in results) == 1
    assert len({ticket.id for ticket, _ in results}) == 1
    assert await count_rows(store.db, "tickets") == 1
    assert await count_rows(store.db, "ticket_events", "kind = 'created'") == 1


async def test_a_new_ticket_after_the_previous_one_closed(store: Store) -> None:
    first = await open_for(store, 1)
    again, created = await store.open_ticket(
        first.conversation_id, first.user_id, "policy", "normal", "requested", "again", None
    )
    assert (again.id, created) == (first.id, False)
    assert await store.resolve(first.id, "counsellor:9")
    second, created = await store.open_ticket(
        first.conversation_id, first.user_id, "policy", "normal", "requested", "again", None
    )
    assert created
    assert second.id != first.id
    closed = await store.get_ticket(first.id)
    assert closed is not None and closed.open_conversation_id is None


async def test_bad_tickets_are_refused_not_mistaken_for_duplicates(store: Store) -> None:
    with pytest.raises(IntegrityError):  # no such conversation
        await store.open_ticket(999, 999, "policy", "normal", "requested", "x", None)
    user_id, conversation_id = await new_graduate(store, 1)
    with pytest.raises(IntegrityError, match="priority"):  # CHECK constraint
        await store.open_ticket(
            conversation_id,
            user_id,
            "policy",
            cast(Any, "whenever"),
            "requested",
            "x",
            None,
        )
    assert await store.open_ticket_for(conversation_id) is None


async def test_exactly_one_counsellor_wins_a_claim(store: Store) -> None:
    ticket = await open_for(store, 1)
    counsellors = [101, 102, 103, 104, 105, 106]
    rows = {c: (await store.counsellor(telegram_id=c)).id for c in counsellors}
    results = await asyncio.gather(*(claim_as(store, ticket.id, c) for c in counsellors))
    assert sum(results) == 1
    winner = counsellors[results.index(True)]
    claimed = await store.get_ticket(ticket.id)
    assert claimed is not None
    assert (claimed.status, claimed.assignee_id) == ("assigned", rows[winner])
    assert claimed.claimed_at is not None
    assert (await store.load_conversation(ticket.user_id)).owner == "assigned"
    claims = [event for event in await store.events(ticket.id) if event.kind == "claimed"]
    assert [event.actor for event in claims] == [f"counsellor:{winner}"]


async def test_transfer_to_another_counsellor_and_back_to_the_queue(store: Store) -> None:
    ticket = await open_for(store, 1)
    assert not await store.transfer(ticket.id, None, "counsellor:1")  # not assigned yet
    assert await claim_as(store, ticket.id, 101)
    first, second = [(await store.counsellor(telegram_id=t)).id for t in (101, 202)]
    assert await store.transfer(ticket.id, second, "counsellor:101")
    moved = await store.get_ticket(ticket.id)
    assert moved is not None and moved.assignee_id == second
    assert await store.transfer(ticket.id, None, "counsellor:202")
    queued = await store.get_ticket(ticket.id)
    assert queued is not None
    assert (queued.status, queued.assignee_id) == ("queued", None)
    assert (await store.load_conversation(ticket.user_id)).owner == "queued"
    assert await claim_as(store, ticket.id, 303)  # can be claimed again
    transfers = [e.data for e in await store.events(ticket.id) if e.kind == "transferred"]
    assert transfers == [{"from": first, "to": second}, {"from": second, "to": None}]


@pytest.mark.parametrize("close", ["resolve", "cancel"])
async def test_closing_hands_the_conversation_back_to_the_bot(store: Store, close: str) -> None:
    ticket = await open_for(store, 1)
    assert await claim_as(store, ticket.id, 101)
    results = await asyncio.gather(
        *(getattr(store, close)(ticket.id, "counsellor:101") for _ in range(4))
    )
    assert sum(results) == 1
    closed = await store.get_ticket(ticket.id)
    assert closed is not None
    assert closed.status == {"resolve": "resolved", "cancel": "cancelled"}[close]
    assert closed.resolved_at is not None
    assert not closed.is_open
    assert await store.open_ticket_for(ticket.conversation_id) is None
    assert (await store.load_conversation(ticket.user_id)).owner == "bot"
    assert not await claim_as(store, ticket.id, 102)
    other = await store.counsellor(telegram_id=102)
    assert not await store.transfer(ticket.id, other.id, "cli")
    assert [e.kind for e in await store.events(ticket.id)][-1] == closed.status


async def test_queue_position_urgent_then_high_then_normal_then_fifo(
    store: Store, clock: FakeClock
) -> None:
    order = ["normal", "high", "normal", "urgent", "high"]
    tickets = []
    for n, priority in enumerate(order):
        clock.advance(minutes=1)
        tickets.append(await open_for(store, 100 + n, priority))
    positions = [await store.queue_position(ticket.id) for ticket in tickets]
    # urgent(3) first, then high(1), high(4), then normal(0), normal(2)
    assert positions == [4, 2, 5, 1, 3]
    assert await claim_as(store, tickets[3].id, 9)
    assert await store.queue_position(tickets[3].id) == 0
    assert await store.queue_position(tickets[1].id) == 1
    assert await store.queue_position(tickets[0].id) == 3


async def test_same_instant_tickets_keep_creation_order(store: Store) -> None:
    tickets = [await open_for(store, 100 + n) for n in range(3)]  # the clock does not move
    assert [await store.queue_position(t.id) for t in tickets] == [1, 2, 3]


async def test_sla_reminder_is_claimed_once(store: Store, clock: FakeClock) -> None:
    old = await open_for(store, 1)
    clock.advance(minutes=10)
    await open_for(store, 2)
    clock.advance(minutes=6)
    due = await store.tickets_needing_reminder(clock.now, dt.timedelta(minutes=15))
    assert [ticket.id for ticket in due] == [old.id]
    results = await asyncio.gather(*(store.mark_reminded(old.id) for _ in range(5)))
    assert sum(results) == 1
    assert await store.tickets_needing_reminder(clock.now, dt.timedelta(minutes=15)) == []
    reminded = await store.get_ticket(old.id)
    assert reminded is not None and reminded.sla_reminded_at == clock.now


async def test_long_wait_and_giveup_marks(store: Store, clock: FakeClock) -> None:
    ticket = await open_for(store, 1)
    clock.advance(hours=5)
    wait = dt.timedelta(hours=4)
    assert [t.id for t in await store.tickets_needing_long_wait_notice(clock.now, wait)] == [
        ticket.id
    ]
    assert [t.id for t in await store.tickets_needing_giveup_offer(clock.now, wait)] == [ticket.id]
    assert await store.mark_long_wait_notified(ticket.id)
    assert not await store.mark_long_wait_notified(ticket.id)
    assert await store.mark_giveup_offered(ticket.id)
    assert not await store.mark_giveup_offered(ticket.id)
    assert await store.tickets_needing_long_wait_notice(clock.now, wait) == []
    assert await store.tickets_needing_giveup_offer(clock.now, wait) == []
    assert await store.set_contact(ticket.id, "wechat: lihua")
    marked = await store.get_ticket(ticket.id)
    assert marked is not None and marked.contact == "wechat: lihua"


async def test_first_response_and_rating_count_once(store: Store, clock: FakeClock) -> None:
    ticket = await open_for(store, 1)
    clock.advance(minutes=3)
    assert await store.mark_first_response(ticket.id)
    clock.advance(minutes=3)
    assert not await store.mark_first_response(ticket.id)
    answered = await store.get_ticket(ticket.id)
    assert answered is not None
    assert answered.first_response_at == ticket.created_at + dt.timedelta(minutes=3)

    with pytest.raises(ValueError):
        await store.set_rating(ticket.id, 6)
    assert await store.set_rating(ticket.id, 4)
    assert not await store.set_rating(ticket.id, 1)
    rated = await store.get_ticket(ticket.id)
    assert rated is not None and rated.rating == 4
    assert await count_rows(store.db, "feedback", "kind = 'rating' AND value = 4") == 1


async def test_forum_topic_and_card(store: Store) -> None:
    chat = -1_001_234_567_890
    first = await open_for(store, 1)
    second = await open_for(store, 2)
    assert await store.set_topic(first.id, chat, 11, "#1 rights")
    assert not await store.set_topic(first.id, chat, 12, "#1 again")  # already has one
    assert not await store.set_topic(second.id, chat, 11, "#2")  # topic taken by #1
    assert await store.set_topic(first.id, chat, 13, "#1 recreated", replace=True)
    found = await store.ticket_by_topic(chat, 13)
    assert found is not None
    assert (found.id, found.topic_name) == (first.id, "#1 recreated")
    assert await store.ticket_by_topic(chat, 11) is None
    assert await store.set_card_message(first.id, 77)
    card = await store.get_ticket(first.id)
    assert card is not None and card.card_message_id == 77
    kinds = [e.kind for e in await store.events(first.id)]
    assert kinds == ["created", "topic_created", "topic_created"]


async def test_list_tickets_and_custom_events(store: Store, clock: FakeClock) -> None:
    first = await open_for(store, 1)
    clock.advance(minutes=1)
    second = await open_for(store, 2)
    assert await claim_as(store, second.id, 5)
    assert [t.id for t in await store.list_tickets()] == [second.id, first.id]
    assert [t.id for t in await store.list_tickets(["queued"])] == [first.id]
    five = await store.counsellor(telegram_id=5)
    assert [t.id for t in await store.list_tickets(assignee_id=five.id)] == [second.id]
    assert [t.id for t in await store.list_tickets(limit=1)] == [second.id]

    await store.add_event(first.id, "note", "counsellor:5", {"text": "called back"})
    assert (await store.events(first.id))[-1].data == {"text": "called back"}


async def test_composed_transaction_rolls_back_together(store: Store) -> None:
    ticket = await open_for(store, 1)
    with pytest.raises(RuntimeError):
        async with store.transaction() as session:
            assert await claim_as(store, ticket.id, 5, session=session)
            await store.add_event(ticket.id, "note", "cli", session=session)
            raise RuntimeError("abort")
    unchanged = await store.get_ticket(ticket.id)
    assert unchanged is not None and unchanged.status == "queued"
    assert [e.kind for e in await store.events(ticket.id)] == ["created"]
