"""Relay links: which message was copied where between a graduate and the counsellors."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from bot.storage.base import StoreBase
from bot.storage.models import MessageLinkRow
from bot.storage.records import Direction, MessageLink
from bot.storage.sql import record, rowcount

HANDED_TO_OUTBOX = 0
"""A relay link's target message id while the outbox holds the copy (written with the
link, before the first attempt to send it; replaced by the copy's id once the relaying
process has sent it): the link is final, the message is not relayed again."""


class RelayMixin(StoreBase):
    """The ``Store``'s relay links."""

    def _link_key(
        self, direction: Direction, source_chat_id: int, source_message_id: int
    ) -> ColumnElement[bool]:
        return and_(
            MessageLinkRow.direction == direction,
            MessageLinkRow.source_chat_id == source_chat_id,
            MessageLinkRow.source_message_id == source_message_id,
        )

    async def claim_link(
        self,
        ticket_id: int,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        target_chat_id: int,
        target_message_id: int | None = None,
        *,
        stale_after: dt.timedelta | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Reserve the relay of one message before sending it: True for exactly one
        caller, False if that message was already relayed (or is being relayed) in that
        direction. The desk reserves with ``target_message_id=HANDED_TO_OUTBOX`` and queues
        the copy in the outbox in the same transaction (the link is final at once), then
        sends, then ``complete_link`` with the copy's id. A link reserved without a target
        (an older version's, or ``record_link``'s callers) is completed the same way, or
        dropped with ``release_link``.

        With ``stale_after``, a reservation older than that which was never completed
        (its worker died while sending) is taken over, taking ``target_message_id``: True
        for exactly one caller. A completed link, or one handed to the outbox, is never
        relayed again."""
        now = self.now()
        statement = insert(MessageLinkRow).values(
            ticket_id=ticket_id,
            direction=direction,
            source_chat_id=source_chat_id,
            source_message_id=source_message_id,
            target_chat_id=target_chat_id,
            target_message_id=target_message_id,
            created_at=now,
        )
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    await s.execute(statement)
            except IntegrityError:
                key = self._link_key(direction, source_chat_id, source_message_id)
                if (await s.execute(select(MessageLinkRow.id).where(key))).first() is None:
                    raise  # not a duplicate: e.g. no such ticket
                if stale_after is None:
                    return False
                takeover = (
                    update(MessageLinkRow)
                    .where(
                        key,
                        MessageLinkRow.target_message_id.is_(None),
                        MessageLinkRow.created_at <= now - stale_after,
                    )
                    .values(created_at=now, target_message_id=target_message_id)
                )
                return rowcount(await self._dml(s, takeover)) == 1
            return True

    async def record_link(
        self,
        ticket_id: int,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        target_chat_id: int,
        target_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record a relay that already happened; False if that source message was
        already relayed in that direction."""
        return await self.claim_link(
            ticket_id,
            direction,
            source_chat_id,
            source_message_id,
            target_chat_id,
            target_message_id,
            session=session,
        )

    async def complete_link(
        self,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        target_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Fill in the relayed copy's message id after a successful ``claim_link``: once,
        on a link without a target or one handed to the outbox (``HANDED_TO_OUTBOX``, also
        accepted here: the link is final either way)."""
        statement = (
            update(MessageLinkRow)
            .where(
                self._link_key(direction, source_chat_id, source_message_id),
                or_(
                    MessageLinkRow.target_message_id.is_(None),
                    MessageLinkRow.target_message_id == HANDED_TO_OUTBOX,
                ),
            )
            .values(target_message_id=target_message_id)
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1

    async def release_link(
        self,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Drop an unfinished claim (the send failed) so the message can be relayed later."""
        statement = delete(MessageLinkRow).where(
            self._link_key(direction, source_chat_id, source_message_id),
            MessageLinkRow.target_message_id.is_(None),
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1

    async def link_for_source(
        self,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> MessageLink | None:
        query = select(MessageLinkRow).where(
            self._link_key(direction, source_chat_id, source_message_id)
        )
        async with self._tx(session) as s:
            row = (await s.execute(query)).scalar_one_or_none()
            return None if row is None else record(MessageLink, row)

    async def link_for_target(
        self,
        target_chat_id: int,
        target_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> MessageLink | None:
        """The link whose relayed copy is this message (e.g. a reply to a relayed message)."""
        query = (
            select(MessageLinkRow)
            .where(
                MessageLinkRow.target_chat_id == target_chat_id,
                MessageLinkRow.target_message_id == target_message_id,
            )
            .order_by(MessageLinkRow.id)
            .limit(1)
        )
        async with self._tx(session) as s:
            row = (await s.execute(query)).scalar_one_or_none()
            return None if row is None else record(MessageLink, row)
