"""Conversations (the agent's state, who answers the graduate) and their turns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff.models import Owner
from bot.storage.base import StoreBase
from bot.storage.hot_path import _TURNS
from bot.storage.models import ConversationRow, TurnRow
from bot.storage.records import ConversationRecord, NewTurn, TurnRecord, TurnRole
from bot.storage.sql import json, record, records, redacted, rowcount


class ConversationsMixin(StoreBase):
    """The ``Store``'s conversations and turns."""

    async def load_conversation(
        self, user_id: int, *, session: AsyncSession | None = None
    ) -> ConversationRecord:
        """The user's conversation, created (empty state, owner 'bot') if missing.

        Raises ``LookupError`` if there is no such user.
        """
        query = select(ConversationRow).where(ConversationRow.user_id == user_id)
        async with self._tx(session) as s:
            row = (await s.execute(query)).scalar_one_or_none()
            if row is not None:
                return record(ConversationRecord, row)
            try:
                async with s.begin_nested():
                    created = await s.execute(
                        insert(ConversationRow)
                        .values(
                            user_id=user_id, state={}, owner="bot", version=0, updated_at=self.now()
                        )
                        .returning(ConversationRow)
                    )
                    return record(ConversationRecord, created.scalar_one())
            except IntegrityError as exc:
                row = (await s.execute(query)).scalar_one_or_none()
                if row is None:
                    raise LookupError(f"no user with id {user_id}") from exc
                return record(ConversationRecord, row)

    async def get_conversation(
        self, conversation_id: int, *, session: AsyncSession | None = None
    ) -> ConversationRecord | None:
        async with self._tx(session) as s:
            row = await s.get(ConversationRow, conversation_id)
            return None if row is None else record(ConversationRecord, row)

    async def save_state(
        self,
        conversation_id: int,
        state: dict[str, Any],
        expected_version: int,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Store the agent's state if nobody saved since ``expected_version`` was read.

        False means a concurrent save won: reload and retry. Bumps the version.
        """
        statement = (
            update(ConversationRow)
            .where(
                ConversationRow.id == conversation_id,
                ConversationRow.version == expected_version,
            )
            .values(
                state=redacted(json(state)),  # what the graduate wrote, as in the turns
                version=ConversationRow.version + 1,
                updated_at=self.now(),
            )
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1

    async def set_owner(
        self,
        conversation_id: int,
        owner: Owner,
        *,
        expected: Owner | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Change who answers the graduate; with ``expected``, only from that owner."""
        conditions = [ConversationRow.id == conversation_id]
        if expected is not None:
            conditions.append(ConversationRow.owner == expected)
        statement = (
            update(ConversationRow).where(*conditions).values(owner=owner, updated_at=self.now())
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1

    # --- turns -----------------------------------------------------------------------

    async def add_turn(
        self,
        conversation_id: int,
        role: TurnRole,
        text: str,
        *,
        lang: str | None = None,
        intent: str | None = None,
        confidence: float | None = None,
        handoff: bool = False,
        citations: Sequence[Any] = (),
        telegram_message_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> int:
        """Append a message to the transcript; returns the turn id."""
        turn = NewTurn(
            role,
            text,
            lang=lang,
            intent=intent,
            confidence=confidence,
            handoff=handoff,
            citations=tuple(citations),
            telegram_message_id=telegram_message_id,
        )
        statement = (
            insert(_TURNS).values(turn.values(conversation_id, self.now())).returning(TurnRow.id)
        )
        async with self._tx(session) as s:
            return (await s.execute(statement)).scalar_one()

    async def recent_turns(
        self, conversation_id: int, limit: int = 20, *, session: AsyncSession | None = None
    ) -> list[TurnRecord]:
        """The last ``limit`` turns, oldest first."""
        query = (
            select(TurnRow)
            .where(TurnRow.conversation_id == conversation_id)
            .order_by(TurnRow.created_at.desc(), TurnRow.id.desc())
            .limit(limit)
        )
        async with self._tx(session) as s:
            rows = (await s.execute(query)).scalars().all()
        return records(TurnRecord, reversed(rows))
