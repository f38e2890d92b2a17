"""``Erasures``: what /forget still has to delete in Telegram, durable until it is done.

``Store.forget_user`` deletes a graduate's rows; the bot's copies of their messages in the
counsellor group live in Telegram. ``Erasures.forget`` deletes the rows and, in the same
transaction, writes one *erasure* per chat or forum topic of the counsellor group that held
their tickets: the ids of the bot's messages there that carry the graduate's words (each
ticket's card, the copies of their messages, the notice with the contact details they left),
or, where some of those ids were never learnt, the whole topic. The Telegram channel carries
them out (``bot.channels.telegram.forget``) and records every step here, so a restart, a
crash or a Telegram outage (429, 5xx) only delays the deletion.

Steps: 'messages' (``deleteMessages``, at most 100 ids a call; the ids still to delete are
kept) → 'rename' (the emptied topic loses the graduate's label) → 'done'. When Telegram
refuses to delete a message (sent more than 48 hours ago, or the bot lacks the right), or
the topic holds copies whose ids are unknown (``whole``): 'topic' (``deleteForumTopic``,
the topic with everything in it) → 'done'; when it refuses that too, or there is no topic
to delete: 'failed', and the counsellors are asked to delete the messages by hand (a notice
queued in the outbox in the same transaction).

A pending erasure's ``next_attempt_at`` in the future is a lease, as in the outbox: the
process that planned it (or took it with ``due``) is carrying it out; once it passes, any
process's job may. Every step is idempotent (deleted messages are skipped, a deleted topic
is "already gone", a second notice has the same outbox key), so an erasure carried out twice
— a lease that ran out during a long 429 — does no harm.

Races: the copies are known from ``message_links``. A copy the outbox job of another process
is sending at the very moment of /forget (its row is deleted with the ticket) may land with
an id nobody records; its link then has no id, so that topic is deleted whole. A copy that
went to the group outside any topic (its topic could not be made) with an id never learnt
cannot be found again: it is not counted (it can only happen when Telegram answered a copy
the bot then could not record).

Rows hold no personal data: chat, topic and message ids and the deleted ticket's number.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import ConversationRow, ErasureRow, MessageLinkRow, TicketRow
from bot.storage.outbox import MAX_ERROR_CHARS
from bot.storage.records import OutboxItem, Send
from bot.storage.sql import record, records, rowcount
from bot.storage.store import Store

BATCH = 100
"""``deleteMessages`` takes 1-100 message ids."""


class Step(enum.StrEnum):
    MESSAGES = "messages"
    TOPIC = "topic"
    RENAME = "rename"
    DONE = "done"
    FAILED = "failed"


PENDING = (Step.MESSAGES, Step.TOPIC, Step.RENAME)


@dataclass(frozen=True, slots=True)
class Erasure:
    id: int
    chat_id: int
    thread_id: int | None
    ticket_number: int
    message_ids: list[int]
    whole: bool
    step: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def pending(self) -> bool:
        return self.step in PENDING


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What ``Erasures.forget`` did: rows deleted per table (``Store.forget_user``) and the
    erasures planned, leased to the caller."""

    counts: dict[str, int]
    erasures: tuple[Erasure, ...] = ()


@dataclass
class _Plan:
    chat_id: int
    thread_id: int | None
    ticket_number: int
    message_ids: set[int] = field(default_factory=set)
    whole: bool = False
    """Some copy's id is unknown: only deleting the topic removes it."""

    @property
    def first_step(self) -> Step:
        if self.message_ids:
            return Step.MESSAGES
        return Step.TOPIC if self.whole else Step.RENAME


async def _plan(s: AsyncSession, user_id: int) -> list[_Plan]:
    """Where the graduate's tickets left the bot's messages: per chat and topic, the ids of
    the ticket card and of the copies (``to_counsellors`` links, the contact notice's too)."""
    conversations = select(ConversationRow.id).where(ConversationRow.user_id == user_id)
    tickets = (
        await s.execute(
            select(
                TicketRow.id, TicketRow.topic_chat_id, TicketRow.topic_id, TicketRow.card_message_id
            )
            .where(or_(TicketRow.user_id == user_id, TicketRow.conversation_id.in_(conversations)))
            .order_by(TicketRow.id)
        )
    ).all()
    if not tickets:
        return []
    links = (
        await s.execute(
            select(
                MessageLinkRow.ticket_id,
                MessageLinkRow.target_chat_id,
                MessageLinkRow.target_message_id,
            ).where(
                MessageLinkRow.ticket_id.in_([t.id for t in tickets]),
                MessageLinkRow.direction == "to_counsellors",
            )
        )
    ).all()
    plans: dict[tuple[int, int | None], _Plan] = {}

    def plan(chat: int, thread: int | None, ticket: int) -> _Plan:
        return plans.setdefault((chat, thread), _Plan(chat, thread, ticket))

    for ticket_id, chat, thread, card in tickets:
        topic = plan(chat, thread, ticket_id) if chat is not None and thread else None
        if topic is not None and card:
            topic.message_ids.add(int(card))
        for linked_ticket, target_chat, target_message in links:
            if linked_ticket != ticket_id:
                continue
            if target_message is None or target_message <= 0:  # never learnt (HANDED_TO_OUTBOX)
                if topic is not None:
                    topic.whole = True
                continue
            # a copy outside the ticket's topic: the group itself, when the topic was gone
            where = topic if topic is not None and target_chat == chat else None
            if where is None:
                where = plan(target_chat, None, ticket_id)
            where.message_ids.add(int(target_message))
    return [p for p in plans.values() if p.message_ids or p.whole or p.thread_id is not None]


class Erasures:
    """The erasures table, on the ``Store``'s database, clock and transactions."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def forget(self, user_id: int, *, lease: dt.timedelta) -> Forgotten:
        """Delete the user and everything of theirs (``Store.forget_user``) and plan the
        erasure of the bot's messages carrying their words in Telegram, in one transaction:
        either both happen or neither. The erasures are leased to the caller for ``lease``
        (it carries them out at once; if it dies, the job does once the lease has passed)."""
        store = self.store
        now = store.now()
        async with store.transaction() as tx:
            plans = await _plan(tx, user_id)
            rows = [
                {
                    "chat_id": p.chat_id,
                    "thread_id": p.thread_id,
                    "ticket_number": p.ticket_number,
                    "message_ids": sorted(p.message_ids),
                    "whole": p.whole,
                    "step": p.first_step.value,
                    "attempts": 0,
                    "next_attempt_at": now + lease,
                    "created_at": now,
                }
                for p in plans
            ]
            planned: list[Erasure] = []
            if rows:
                result = await tx.execute(insert(ErasureRow).returning(ErasureRow), rows)
                planned = records(Erasure, result.scalars())
            counts = await store.forget_user(user_id, session=tx)
        return Forgotten(counts, tuple(sorted(planned, key=lambda e: e.id)))

    async def get(self, erasure_id: int) -> Erasure | None:
        async with self.store.transaction() as tx:
            row = await tx.get(ErasureRow, erasure_id)
            return None if row is None else record(Erasure, row)

    async def all(self) -> list[Erasure]:
        """Every erasure, oldest first (for operators and tests)."""
        async with self.store.transaction() as tx:
            rows = await tx.execute(select(ErasureRow).order_by(ErasureRow.id))
            return records(Erasure, rows.scalars())

    async def due(self, now: dt.datetime, limit: int = 20, *, lease: dt.timedelta) -> list[Erasure]:
        """Pending erasures whose time has come, leased to the caller (``next_attempt_at``
        moves ``lease`` ahead, so another process's job does not take them too)."""
        candidates = (
            select(ErasureRow.id)
            .where(ErasureRow.step.in_(PENDING), ErasureRow.next_attempt_at <= now)
            .order_by(ErasureRow.next_attempt_at, ErasureRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(ErasureRow)
            .where(
                ErasureRow.id.in_(candidates.scalar_subquery()),
                ErasureRow.step.in_(PENDING),
                ErasureRow.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + lease)
            .returning(ErasureRow)
        )
        async with self.store.transaction() as tx:
            rows = await tx.execute(statement, execution_options={"synchronize_session": False})
            return sorted(records(Erasure, rows.scalars()), key=lambda e: e.id)

    async def advance(
        self, erasure: Erasure, step: Step, message_ids: Sequence[int] = ()
    ) -> Erasure:
        """Record progress: the next ``step`` and the messages still to delete. The lease is
        kept; a finished erasure ('done') gets its ``finished_at``."""
        values: dict[str, object] = {"step": step.value, "message_ids": list(message_ids)}
        if step not in PENDING:
            values["finished_at"] = self.store.now()
        await self._set(erasure.id, values)
        fresh = await self.get(erasure.id)
        assert fresh is not None, erasure.id
        return fresh

    async def retry(self, erasure: Erasure, error: str, at: dt.datetime) -> None:
        """Telegram kept failing (429, 5xx, timeouts): the job tries the same step at ``at``."""
        values = {
            "attempts": erasure.attempts + 1,
            "last_error": error[:MAX_ERROR_CHARS],
            "next_attempt_at": at,
        }
        await self._set(erasure.id, values)

    async def give_up(
        self, erasure: Erasure, error: str, notice: Send | None, *, lease: dt.timedelta
    ) -> list[OutboxItem]:
        """Telegram refused every way of deleting them: the erasure is 'failed' and the
        counsellors' ``notice`` (asking them to delete the messages by hand) is in the
        outbox, in one transaction; returns the notice's outbox item, leased to the
        caller for ``lease`` (empty if it was queued before)."""
        store = self.store
        values = {
            "step": Step.FAILED.value,
            "attempts": erasure.attempts + 1,
            "last_error": error[:MAX_ERROR_CHARS],
            "finished_at": store.now(),
        }
        async with store.transaction() as tx:
            await self._set(erasure.id, values, tx)
            if notice is None:
                return []
            return await store.queue([notice], lease=lease, session=tx)

    async def prune(self, before: dt.datetime) -> int:
        """Delete finished erasures ('done', 'failed') older than ``before``; how many."""
        statement = delete(ErasureRow).where(
            ErasureRow.step.in_([Step.DONE.value, Step.FAILED.value]),
            ErasureRow.created_at < before,
        )
        async with self.store.transaction() as tx:
            result = await tx.execute(statement, execution_options={"synchronize_session": False})
            return rowcount(result)

    async def _set(
        self, erasure_id: int, values: dict[str, object], session: AsyncSession | None = None
    ) -> None:
        statement = (
            update(ErasureRow)
            .where(ErasureRow.id == erasure_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if session is not None:
            await session.execute(statement)
            return
        async with self.store.transaction() as tx:
            await tx.execute(statement)
