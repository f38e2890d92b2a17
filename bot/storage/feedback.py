"""Feedback on answers (thumbs, ratings) and the questions the bot could not answer."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.base import StoreBase
from bot.storage.models import FeedbackRow, UnansweredRow
from bot.storage.records import FeedbackKind, Unanswered, UnansweredQuestion, UnansweredReason
from bot.storage.sql import records


class FeedbackMixin(StoreBase):
    """The ``Store``'s feedback and unanswered questions."""

    async def has_feedback(
        self, user_id: int, turn_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        """Whether this user already rated this answer (a double tap counts once)."""
        query = select(FeedbackRow.id).where(
            FeedbackRow.user_id == user_id, FeedbackRow.turn_id == turn_id
        )
        async with self._tx(session) as s:
            return (await s.execute(query.limit(1))).first() is not None

    async def add_feedback(
        self,
        user_id: int,
        kind: FeedbackKind,
        value: int,
        *,
        conversation_id: int | None = None,
        turn_id: int | None = None,
        ticket_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> int:
        """A thumb (value 1 up, -1 down) or a 1–5 rating; returns its id."""
        if kind == "thumb" and value not in (1, -1):
            raise ValueError(f"a thumb is 1 or -1, got {value}")
        if kind == "rating" and not 1 <= value <= 5:
            raise ValueError(f"a rating is 1..5, got {value}")
        statement = (
            insert(FeedbackRow)
            .values(
                user_id=user_id,
                conversation_id=conversation_id,
                turn_id=turn_id,
                ticket_id=ticket_id,
                kind=kind,
                value=value,
                created_at=self.now(),
            )
            .returning(FeedbackRow.id)
        )
        async with self._tx(session) as s:
            return (await s.execute(statement)).scalar_one()

    async def add_unanswered(
        self,
        user_id: int | None,
        question: str,
        lang: str | None,
        confidence: float | None,
        reason: UnansweredReason,
        *,
        session: AsyncSession | None = None,
    ) -> int:
        """Log a question the bot could not answer well. The text is redacted (ID,
        phone, e-mail and bank numbers) before it is written."""
        logged = Unanswered(user_id, question, lang, confidence, reason)
        async with self._tx(session) as s:
            return int((await s.execute(logged.statement(self.now()))).scalar_one())

    async def list_unanswered(
        self, since: dt.datetime, limit: int = 100, *, session: AsyncSession | None = None
    ) -> list[UnansweredQuestion]:
        """Unanswered questions logged since ``since``, newest first."""
        query = (
            select(UnansweredRow)
            .where(UnansweredRow.created_at >= since)
            .order_by(UnansweredRow.created_at.desc(), UnansweredRow.id.desc())
            .limit(limit)
        )
        async with self._tx(session) as s:
            return records(UnansweredQuestion, (await s.execute(query)).scalars())
