"""Usage figures and retention (what graduates wrote goes after a while)."""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any, cast

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from bot.storage.base import StoreBase
from bot.storage.models import (
    ConversationRow,
    FeedbackRow,
    TicketAttachmentRow,
    TicketRow,
    TurnRow,
    UnansweredRow,
)
from bot.storage.records import Stats
from bot.storage.sql import rowcount


class StatsMixin(StoreBase):
    """The ``Store``'s usage figures and retention."""

    async def stats(
        self,
        since: dt.datetime,
        until: dt.datetime | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> Stats:
        """Usage figures for ``since <= created_at < until`` (until: no upper bound)."""

        def window(column: Any) -> ColumnElement[bool]:
            if until is None:
                return cast(ColumnElement[bool], column >= since)
            return and_(column >= since, column < until)

        async with self._tx(session) as s:

            async def scalar(*conditions: ColumnElement[bool], of: Any) -> int:
                query = select(func.count(of)).where(*conditions)
                return int((await s.execute(query)).scalar_one())

            questions = await scalar(
                TurnRow.role == "graduate", window(TurnRow.created_at), of=TurnRow.id
            )
            answered = await scalar(
                TurnRow.role == "bot",
                TurnRow.handoff.is_(False),
                or_(TurnRow.intent.is_(None), TurnRow.intent != "unclear"),
                window(TurnRow.created_at),
                of=TurnRow.id,
            )
            handed_off = await scalar(window(TicketRow.created_at), of=TicketRow.id)
            thumb = and_(FeedbackRow.kind == "thumb", window(FeedbackRow.created_at))
            thumbs_up = await scalar(thumb, FeedbackRow.value > 0, of=FeedbackRow.id)
            thumbs_down = await scalar(thumb, FeedbackRow.value < 0, of=FeedbackRow.id)
            rated = (
                await s.execute(
                    select(func.count(FeedbackRow.id), func.avg(FeedbackRow.value)).where(
                        FeedbackRow.kind == "rating", window(FeedbackRow.created_at)
                    )
                )
            ).one()
            responses = await s.execute(
                select(TicketRow.created_at, TicketRow.first_response_at).where(
                    window(TicketRow.created_at), TicketRow.first_response_at.is_not(None)
                )
            )
            waits = [
                (first - created).total_seconds()
                for created, first in responses
                if first is not None
            ]
            unanswered = await scalar(window(UnansweredRow.created_at), of=UnansweredRow.id)
        ratings, mean = rated
        return Stats(
            since=since,
            questions=questions,
            answered=answered,
            handed_off=handed_off,
            thumbs_up=thumbs_up,
            thumbs_down=thumbs_down,
            ratings=int(ratings),
            rating_mean=None if mean is None else float(mean),
            median_first_response_s=statistics.median(waits) if waits else None,
            unanswered=unanswered,
        )

    async def delete_transcripts_older_than(
        self, cutoff: dt.datetime, *, session: AsyncSession | None = None
    ) -> dict[str, int]:
        """Retention (``GRADGUIDE_RETENTION_DAYS``): what graduates wrote before ``cutoff``
        goes — their turns and attachments, the transcripts and the contact details of
        tickets closed before it, the dialogue state of conversations idle since before it
        (owned by the bot), and unanswered questions. Tickets, ratings and counts stay for the
        records. Returns rows changed per kind ("attachments" only when some were deleted)."""
        async with self._tx(session) as s:
            turns = rowcount(await self._dml(s, delete(TurnRow).where(TurnRow.created_at < cutoff)))
            attachments = rowcount(
                await self._dml(
                    s,
                    delete(TicketAttachmentRow).where(TicketAttachmentRow.created_at < cutoff),
                )
            )
            closed = await s.execute(
                select(TicketRow.id, TicketRow.transcript, TicketRow.contact).where(
                    TicketRow.status.in_(["resolved", "cancelled"]),
                    TicketRow.resolved_at < cutoff,
                )
            )
            ids = [ticket_id for ticket_id, transcript, contact in closed if transcript or contact]
            if ids:
                statement = (
                    update(TicketRow)
                    .where(TicketRow.id.in_(ids))
                    .values(transcript=[], contact=None)
                )
                await self._dml(s, statement)
            idle = await s.execute(
                select(ConversationRow.id, ConversationRow.state).where(
                    ConversationRow.updated_at < cutoff, ConversationRow.owner == "bot"
                )
            )
            stale = [conversation_id for conversation_id, state in idle if state]
            if stale:
                statement = (
                    update(ConversationRow)
                    .where(ConversationRow.id.in_(stale))
                    .values(state={}, version=ConversationRow.version + 1)
                )
                await self._dml(s, statement)
            unanswered = rowcount(
                await self._dml(s, delete(UnansweredRow).where(UnansweredRow.created_at < cutoff))
            )
        removed = {
            "turns": turns,
            "transcripts": len(ids),
            "conversations": len(stale),
            "unanswered": unanswered,
        }
        if attachments:
            removed["attachments"] = attachments
        return removed
