"""Tickets: opening, claiming, transferring and closing them, their SLA marks and waiting
queries, queue position, rating, contact details and audit trail (events)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from bot.handoff.models import OPEN_STATUSES, Category, Owner, Priority, TicketStatus
from bot.storage.base import StoreBase
from bot.storage.models import ConversationRow, FeedbackRow, TicketEventRow, TicketRow
from bot.storage.records import Escalated, Ticket, TicketEvent
from bot.storage.sql import SYNC, json, priority_rank, record, records, rowcount


class TicketsMixin(StoreBase):
    """The ``Store``'s tickets and their audit trail."""

    async def open_ticket(
        self,
        conversation_id: int,
        user_id: int,
        category: Category,
        priority: Priority,
        reason: str,
        summary: str,
        draft_answer: str | None = None,
        citations: Sequence[Any] = (),
        transcript: Sequence[Any] = (),
        *,
        signals: Sequence[str] = (),
        actor: str = "bot",
        session: AsyncSession | None = None,
    ) -> tuple[Ticket, bool]:
        """Queue a ticket for the conversation: ``(ticket, True)``; or, if one is already
        open, ``(that ticket, False)``. A new ticket sets the conversation owner to
        'queued' and records a 'created' event, in the same transaction."""
        now = self.now()
        statement = (
            insert(TicketRow)
            .values(
                conversation_id=conversation_id,
                user_id=user_id,
                status="queued",
                open_conversation_id=conversation_id,
                category=category,
                priority=priority,
                reason=reason,
                summary=summary,
                draft_answer=draft_answer,
                citations=json(list(citations)),
                transcript=json(list(transcript)),
                signals=list(signals) or None,
                created_at=now,
            )
            .returning(TicketRow)
        )
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    row = (await s.execute(statement)).scalar_one()
            except IntegrityError:
                existing = await self._open_ticket_row(s, conversation_id)
                if existing is None:  # not the one-open-ticket rule: a bad id or value
                    raise
                return record(Ticket, existing), False
            await self._dml(
                s,
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id)
                .values(owner="queued", updated_at=now),
            )
            await self._event(
                s, row.id, "created", actor, {"category": category, "priority": priority}
            )
            return record(Ticket, row), True

    async def _open_ticket_row(self, s: AsyncSession, conversation_id: int) -> TicketRow | None:
        query = select(TicketRow).where(TicketRow.open_conversation_id == conversation_id)
        return (await s.execute(query)).scalar_one_or_none()

    async def _one_ticket(
        self, session: AsyncSession | None, condition: ColumnElement[bool]
    ) -> Ticket | None:
        async with self._tx(session) as s:
            row = (await s.execute(select(TicketRow).where(condition))).scalar_one_or_none()
            return None if row is None else record(Ticket, row)

    async def get_ticket(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> Ticket | None:
        return await self._one_ticket(session, TicketRow.id == ticket_id)

    async def open_ticket_for(
        self, conversation_id: int, *, session: AsyncSession | None = None
    ) -> Ticket | None:
        """The conversation's open (queued or assigned) ticket, if any."""
        return await self._one_ticket(session, TicketRow.open_conversation_id == conversation_id)

    async def ticket_by_topic(
        self, chat_id: int, topic_id: int, *, session: AsyncSession | None = None
    ) -> Ticket | None:
        """The ticket whose forum thread this is (open or closed)."""
        return await self._one_ticket(
            session, and_(TicketRow.topic_chat_id == chat_id, TicketRow.topic_id == topic_id)
        )

    async def list_tickets(
        self,
        status: Sequence[TicketStatus] | None = None,
        limit: int = 50,
        *,
        assignee_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> list[Ticket]:
        """Tickets, newest first, optionally only with these statuses / this assignee."""
        query = select(TicketRow).order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
        if status is not None:
            query = query.where(TicketRow.status.in_(list(status)))
        if assignee_id is not None:
            query = query.where(TicketRow.assignee_id == assignee_id)
        async with self._tx(session) as s:
            return records(Ticket, (await s.execute(query.limit(limit))).scalars())

    async def set_topic(
        self,
        ticket_id: int,
        chat_id: int,
        topic_id: int,
        name: str | None = None,
        *,
        replace: bool = False,
        session: AsyncSession | None = None,
    ) -> bool:
        """Attach the ticket's forum thread. Only if it has none yet, unless ``replace``
        (the old topic was deleted and recreated). False as well if another ticket already
        uses that thread."""
        conditions = [TicketRow.id == ticket_id]
        if not replace:
            conditions.append(TicketRow.topic_id.is_(None))
        statement = (
            update(TicketRow)
            .where(*conditions)
            .values(topic_chat_id=chat_id, topic_id=topic_id, topic_name=name)
        )
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    changed = rowcount(await self._dml(s, statement)) == 1
            except IntegrityError:
                return False
            if changed:
                data = {"chat_id": chat_id, "topic_id": topic_id, "name": name, "replaced": replace}
                await self._event(s, ticket_id, "topic_created", "bot", data)
            return changed

    async def set_card_message(
        self, ticket_id: int, message_id: int | None, *, session: AsyncSession | None = None
    ) -> bool:
        """Remember the ticket card's message (the one with the Claim/Resolve buttons)."""
        statement = (
            update(TicketRow).where(TicketRow.id == ticket_id).values(card_message_id=message_id)
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1

    async def claim(
        self,
        ticket_id: int,
        counsellor_id: int,
        actor: str,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """queued → assigned to this counsellor (``counsellors.id``). Of several concurrent
        claims exactly one returns True. Sets the conversation owner to 'assigned' and
        records 'claimed' by ``actor``."""
        now = self.now()
        statement = (
            update(TicketRow)
            .where(TicketRow.id == ticket_id, TicketRow.status == "queued")
            .values(status="assigned", assignee_id=counsellor_id, claimed_at=now)
            .returning(TicketRow.conversation_id)
        )
        async with self._tx(session) as s:
            conversation_id = (
                await s.execute(statement, execution_options=SYNC)
            ).scalar_one_or_none()
            if conversation_id is None:
                return False
            await self._set_conversation_owner(s, conversation_id, "assigned", now)
            await self._event(s, ticket_id, "claimed", actor, {"counsellor": counsellor_id})
            return True

    async def transfer(
        self,
        ticket_id: int,
        to_counsellor: int | None,
        actor: str,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Hand an open ticket to another counsellor (``counsellors.id``), or back to the
        queue (``None``).

        False if the ticket is closed (or, for ``None``, not assigned)."""
        now = self.now()
        async with self._tx(session) as s:
            current = (
                await s.execute(
                    select(TicketRow.assignee_id, TicketRow.status)
                    .where(TicketRow.id == ticket_id)
                    .with_for_update()
                )
            ).one_or_none()
            if current is None:
                return False
            previous = current.assignee_id
            if to_counsellor is None:
                statement = (
                    update(TicketRow)
                    .where(TicketRow.id == ticket_id, TicketRow.status == "assigned")
                    .values(status="queued", assignee_id=None)
                )
                owner: Owner = "queued"
            else:
                statement = (
                    update(TicketRow)
                    .where(TicketRow.id == ticket_id, TicketRow.status.in_(OPEN_STATUSES))
                    .values(
                        status="assigned",
                        assignee_id=to_counsellor,
                        claimed_at=func.coalesce(TicketRow.claimed_at, now),
                    )
                )
                owner = "assigned"
            conversation_id = (
                await s.execute(
                    statement.returning(TicketRow.conversation_id), execution_options=SYNC
                )
            ).scalar_one_or_none()
            if conversation_id is None:
                return False
            await self._set_conversation_owner(s, conversation_id, owner, now)
            await self._event(
                s, ticket_id, "transferred", actor, {"from": previous, "to": to_counsellor}
            )
            return True

    async def _close(
        self,
        ticket_id: int,
        status: Literal["resolved", "cancelled"],
        actor: str,
        data: dict[str, Any] | None,
        session: AsyncSession | None,
    ) -> bool:
        now = self.now()
        statement = (
            update(TicketRow)
            .where(TicketRow.id == ticket_id, TicketRow.status.in_(OPEN_STATUSES))
            .values(status=status, open_conversation_id=None, resolved_at=now)
            .returning(TicketRow.conversation_id)
        )
        async with self._tx(session) as s:
            conversation_id = (
                await s.execute(statement, execution_options=SYNC)
            ).scalar_one_or_none()
            if conversation_id is None:
                return False
            await self._set_conversation_owner(s, conversation_id, "bot", now)
            await self._event(s, ticket_id, status, actor, data or {})
            return True

    async def resolve(
        self,
        ticket_id: int,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Close an open ticket as resolved; the bot answers the graduate again.
        False if it was already closed (only one concurrent caller wins)."""
        return await self._close(ticket_id, "resolved", actor, data, session)

    async def cancel(
        self,
        ticket_id: int,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Close an open ticket as cancelled (e.g. the graduate went back to the bot)."""
        return await self._close(ticket_id, "cancelled", actor, data, session)

    async def _set_conversation_owner(
        self, s: AsyncSession, conversation_id: int, owner: Owner, now: dt.datetime
    ) -> None:
        await self._dml(
            s,
            update(ConversationRow)
            .where(ConversationRow.id == conversation_id)
            .values(owner=owner, updated_at=now),
        )

    async def _mark_once(self, ticket_id: int, column: Any, session: AsyncSession | None) -> bool:
        statement = (
            update(TicketRow)
            .where(TicketRow.id == ticket_id, column.is_(None))
            .values({column: self.now()})
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1

    async def mark_first_response(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        """Stamp the first counsellor message; True only the first time."""
        return await self._mark_once(ticket_id, TicketRow.first_response_at, session)

    async def mark_reminded(self, ticket_id: int, *, session: AsyncSession | None = None) -> bool:
        """Claim the SLA reminder for this ticket: True for exactly one caller."""
        return await self._mark_once(ticket_id, TicketRow.sla_reminded_at, session)

    async def mark_long_wait_notified(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        """Claim the "still waiting" notice to the graduate: True for exactly one caller."""
        return await self._mark_once(ticket_id, TicketRow.long_wait_notified_at, session)

    async def mark_giveup_offered(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        """Claim the "leave contact details or go back" offer: True for exactly one caller."""
        return await self._mark_once(ticket_id, TicketRow.giveup_offered_at, session)

    async def _waiting(
        self,
        now: dt.datetime,
        older_than: dt.timedelta,
        column: Any,
        session: AsyncSession | None,
    ) -> list[Ticket]:
        query = (
            select(TicketRow)
            .where(
                TicketRow.status == "queued",
                TicketRow.first_response_at.is_(None),
                TicketRow.created_at <= now - older_than,
                column.is_(None),
            )
            .order_by(TicketRow.created_at, TicketRow.id)
        )
        async with self._tx(session) as s:
            return records(Ticket, (await s.execute(query)).scalars())

    async def tickets_needing_reminder(
        self, now: dt.datetime, older_than: dt.timedelta, *, session: AsyncSession | None = None
    ) -> list[Ticket]:
        """Queued tickets created at least ``older_than`` before ``now``, not reminded yet."""
        return await self._waiting(now, older_than, TicketRow.sla_reminded_at, session)

    async def tickets_needing_long_wait_notice(
        self, now: dt.datetime, older_than: dt.timedelta, *, session: AsyncSession | None = None
    ) -> list[Ticket]:
        """Queued tickets waiting at least ``older_than`` whose graduate was not told yet."""
        return await self._waiting(now, older_than, TicketRow.long_wait_notified_at, session)

    async def tickets_needing_giveup_offer(
        self, now: dt.datetime, older_than: dt.timedelta, *, session: AsyncSession | None = None
    ) -> list[Ticket]:
        """Queued tickets waiting at least ``older_than`` without a give-up offer yet."""
        return await self._waiting(now, older_than, TicketRow.giveup_offered_at, session)

    async def queue_position(self, ticket_id: int, *, session: AsyncSession | None = None) -> int:
        """1-based place among queued tickets (urgent, then high, then normal; FIFO
        within a priority). 0 if the ticket is not queued."""
        async with self._tx(session) as s:
            row = (
                await s.execute(
                    select(priority_rank().label("rank"), TicketRow.created_at).where(
                        TicketRow.id == ticket_id, TicketRow.status == "queued"
                    )
                )
            ).one_or_none()
            if row is None:
                return 0
            rank, created_at = row
            position = priority_rank()
            ahead = select(func.count()).where(
                TicketRow.status == "queued",
                or_(
                    position < rank,
                    and_(position == rank, TicketRow.created_at < created_at),
                    and_(
                        position == rank,
                        TicketRow.created_at == created_at,
                        TicketRow.id < ticket_id,
                    ),
                ),
            )
            return int((await s.execute(ahead)).scalar_one()) + 1

    async def set_contact(
        self, ticket_id: int, contact: str | None, *, session: AsyncSession | None = None
    ) -> bool:
        """Contact details the graduate left for a counsellor to get back to them."""
        statement = update(TicketRow).where(TicketRow.id == ticket_id).values(contact=contact)
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1

    async def set_rating(
        self, ticket_id: int, rating: int, *, session: AsyncSession | None = None
    ) -> bool:
        """The graduate's 1–5 rating of the ticket; only the first one counts.

        Also records a 'rated' event and a ``feedback`` row (kind 'rating') for stats,
        so callers should not add that feedback row themselves."""
        if not 1 <= rating <= 5:
            raise ValueError(f"rating must be 1..5, got {rating}")
        now = self.now()
        statement = (
            update(TicketRow)
            .where(TicketRow.id == ticket_id, TicketRow.rating.is_(None))
            .values(rating=rating)
            .returning(TicketRow.user_id, TicketRow.conversation_id)
        )
        async with self._tx(session) as s:
            row = (await s.execute(statement, execution_options=SYNC)).one_or_none()
            if row is None:
                return False
            user_id, conversation_id = row
            await s.execute(
                insert(FeedbackRow).values(
                    user_id=user_id,
                    conversation_id=conversation_id,
                    ticket_id=ticket_id,
                    kind="rating",
                    value=rating,
                    created_at=now,
                )
            )
            await self._event(s, ticket_id, "rated", "graduate", {"rating": rating})
            return True

    async def _event(
        self, s: AsyncSession, ticket_id: int, kind: str, actor: str, data: dict[str, Any]
    ) -> int:
        statement = (
            insert(TicketEventRow)
            .values(
                ticket_id=ticket_id, kind=kind, actor=actor, data=json(data), created_at=self.now()
            )
            .returning(TicketEventRow.id)
        )
        return (await s.execute(statement)).scalar_one()

    async def escalate_ticket(
        self,
        ticket_id: int,
        data: dict[str, Any],
        *,
        actor: str = "bot",
        session: AsyncSession | None = None,
    ) -> Escalated:
        """Make an open ticket a crisis (category 'crisis', priority 'urgent'): a graduate
        whose message to a counsellor the check read as a crisis. Records an 'escalated'
        event with ``data`` (the signals) every time, so the audit trail shows each crisis
        message; the columns change once.

        Race: two replicas escalating the same ticket both record their event; the guarded
        UPDATE (only while open and not yet urgent) changes the row once, and the loser
        reads ``ALREADY``. A ticket resolved meanwhile is ``CLOSED`` and left closed."""
        async with self._tx(session) as s:
            changed = rowcount(
                await self._dml(
                    s,
                    update(TicketRow)
                    .where(
                        TicketRow.id == ticket_id,
                        TicketRow.status.in_(OPEN_STATUSES),
                        or_(TicketRow.category != "crisis", TicketRow.priority != "urgent"),
                    )
                    .values(category="crisis", priority="urgent"),
                )
            )
            row = await s.get(TicketRow, ticket_id)
            if row is None or row.status not in OPEN_STATUSES:
                return Escalated.CLOSED
            await self._event(s, ticket_id, "escalated", actor, data)
            return Escalated.ESCALATED if changed else Escalated.ALREADY

    async def add_event(
        self,
        ticket_id: int,
        kind: str,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> int:
        """Append to the ticket's audit trail (kind e.g. 'note', 'message_to_graduate',
        'relay_failed'; actor e.g. 'bot', 'counsellor:123', 'graduate', 'cli')."""
        async with self._tx(session) as s:
            return await self._event(s, ticket_id, kind, actor, data or {})

    async def events(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> list[TicketEvent]:
        """The ticket's audit trail, oldest first."""
        query = (
            select(TicketEventRow)
            .where(TicketEventRow.ticket_id == ticket_id)
            .order_by(TicketEventRow.created_at, TicketEventRow.id)
        )
        async with self._tx(session) as s:
            return records(TicketEvent, (await s.execute(query)).scalars())
