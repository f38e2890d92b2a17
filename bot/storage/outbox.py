"""The outbox: Bot API calls made durable before they are sent, leased to their sender."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.privacy import redact
from bot.storage.base import StoreBase
from bot.storage.hot_path import _MARK_SENT, _queue
from bot.storage.models import OutboxRow
from bot.storage.records import OutboxItem, Send
from bot.storage.sql import SYNC, json, records, rowcount

MAX_ERROR_CHARS = 2000
SEND_LEASE = dt.timedelta(seconds=60)
"""How long a process that queued a message in the outbox has to send it before the outbox
job of any process may (``Store.queue``; the default of ``GRADGUIDE_CHAT_LEASE_S``)."""


TERMINAL = "terminal"
"""The method of items that no Bot API call sends: messages for a graduate in the terminal,
read by their own ``gradguide chat`` (``terminal_messages``)."""


class OutboxMixin(StoreBase):
    """The ``Store``'s outbox."""

    async def enqueue(
        self,
        dedupe_key: str,
        method: str,
        payload: dict[str, Any],
        ticket_id: int | None = None,
        *,
        not_before: dt.datetime | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Queue a Bot API call for (re)delivery; False if ``dedupe_key`` is already queued."""
        now = self.now()
        statement = insert(OutboxRow).values(
            dedupe_key=dedupe_key,
            ticket_id=ticket_id,
            method=method,
            payload=json(payload),
            status="pending",
            attempts=0,
            next_attempt_at=not_before or now,
            created_at=now,
        )
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    await s.execute(statement)
            except IntegrityError:
                query = select(OutboxRow.id).where(OutboxRow.dedupe_key == dedupe_key)
                if (await s.execute(query)).first() is None:
                    raise
                return False
            return True

    async def queue(
        self,
        sends: Sequence[Send],
        *,
        lease: dt.timedelta = SEND_LEASE,
        session: AsyncSession | None = None,
    ) -> list[OutboxItem]:
        """Make Bot API calls durable before the first attempt to send them: outbox rows
        leased to the caller for ``lease`` (their ``next_attempt_at``), so that no outbox
        job sends them while the caller does. The caller sends them in order, marking each
        ``mark_sent``; on failure ``mark_failed`` hands it to the outbox job; if the caller
        dies, the job sends them once the lease has passed. Returns the items written (a
        key already queued is skipped).

        Races: callers queueing the same key at once (a double tap, two replicas) write it
        once: the unique ``dedupe_key`` lets exactly one insert it, and the others (on
        PostgreSQL after waiting for its commit) get nothing back for it."""
        now = self.now()
        async with self._tx(session) as s:
            connection = await s.connection()
            return await connection.run_sync(_queue, sends, now, now + lease)

    async def renew(
        self,
        item_ids: Sequence[int],
        held_until: dt.datetime,
        until: dt.datetime,
        *,
        session: AsyncSession | None = None,
    ) -> set[int]:
        """Extend the lease of pending items that are still held until ``held_until`` (the
        lease this caller wrote) to ``until``; the ids still held. An item missing from the
        answer was sent, or its lease ran out and the outbox job may have taken it: the
        caller must not send it."""
        if not item_ids:
            return set()
        statement = (
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(list(item_ids)),
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at == held_until,
            )
            .values(next_attempt_at=until)
            .returning(OutboxRow.id)
        )
        async with self._tx(session) as s:
            rows = await s.execute(statement, execution_options=SYNC)
            return {int(row_id) for row_id in rows.scalars()}

    async def move_item(
        self,
        item_id: int,
        payload: dict[str, Any],
        until: dt.datetime,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """A pending item's new parameters (e.g. the forum topic recreated under it),
        leased to the caller until ``until``."""
        statement = (
            update(OutboxRow)
            .where(OutboxRow.id == item_id, OutboxRow.status == "pending")
            .values(payload=json(payload), next_attempt_at=until)
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1

    async def postpone(
        self, item_ids: Sequence[int], until: dt.datetime, *, session: AsyncSession | None = None
    ) -> int:
        """Pending items wait until ``until`` (the parts after one that failed: they keep
        their order behind it)."""
        if not item_ids:
            return 0
        statement = (
            update(OutboxRow)
            .where(OutboxRow.id.in_(list(item_ids)), OutboxRow.status == "pending")
            .values(next_attempt_at=until)
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement))

    async def due(
        self,
        now: dt.datetime,
        limit: int = 20,
        *,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        session: AsyncSession | None = None,
    ) -> list[OutboxItem]:
        """Pending items whose time has come, leased to this caller: their
        ``next_attempt_at`` moves ``lease`` ahead, so a concurrent worker does not get the
        same item, and an item whose worker died comes due again after the lease.
        Follow up with ``mark_sent`` or ``mark_failed``. Terminal items are not among
        them: the graduate's terminal reads those (``terminal_messages``)."""
        candidates = (
            select(OutboxRow.id)
            .where(
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at <= now,
                OutboxRow.method != TERMINAL,
            )
            .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
            .limit(limit)
            # PostgreSQL: concurrent workers take different items instead of queueing on
            # the same rows (SQLite ignores this; its transactions are serialised anyway)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(candidates.scalar_subquery()),
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + lease)
            .returning(OutboxRow)
        )
        async with self._tx(session) as s:
            rows = (await s.execute(statement, execution_options=SYNC)).scalars().all()
        items = records(OutboxItem, rows)
        return sorted(items, key=lambda item: (item.created_at, item.id))

    async def terminal_messages(
        self, key_prefix: str, *, session: AsyncSession | None = None
    ) -> list[OutboxItem]:
        """One terminal graduate's pending items (their keys start with ``key_prefix``),
        oldest first; the terminal prints each and marks it sent."""
        query = (
            select(OutboxRow)
            .where(
                OutboxRow.status == "pending",
                OutboxRow.method == TERMINAL,
                OutboxRow.dedupe_key.startswith(key_prefix, autoescape=True),
            )
            .order_by(OutboxRow.id)
        )
        async with self._tx(session) as s:
            return records(OutboxItem, (await s.execute(query)).scalars())

    async def mark_sent(self, item_id: int, *, session: AsyncSession | None = None) -> bool:
        """Telegram took the item: never sent again. (One short transaction: right after
        every message the bot sends, so it runs as the hot path's steps do.)"""
        sent = {"b_id": item_id, "b_now": self.now()}
        if session is not None:
            return rowcount(await session.execute(_MARK_SENT, sent, execution_options=SYNC)) == 1

        def work(connection: Connection) -> bool:
            return rowcount(connection.execute(_MARK_SENT, sent)) == 1

        return await self._run(work)

    async def mark_failed(
        self,
        item_id: int,
        error: str,
        next_attempt_at: dt.datetime,
        dead: bool = False,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Count a failed attempt; retry at ``next_attempt_at`` or give up (``dead``)."""
        statement = (
            update(OutboxRow)
            .where(OutboxRow.id == item_id, OutboxRow.status == "pending")
            .values(
                attempts=OutboxRow.attempts + 1,
                last_error=redact(error)[:MAX_ERROR_CHARS],
                next_attempt_at=next_attempt_at,
                status="dead" if dead else "pending",
            )
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1

    async def prune_outbox(
        self,
        before: dt.datetime,
        *,
        statuses: Sequence[str] = ("sent", "dead"),
        session: AsyncSession | None = None,
    ) -> int:
        """Delete sent and dead items (or those of ``statuses``) created before
        ``before``; how many."""
        statement = delete(OutboxRow).where(
            OutboxRow.status.in_(list(statuses)), OutboxRow.created_at < before
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement))
