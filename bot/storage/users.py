"""Users: who writes to the bot, their settings, and ``forget_user`` (everything of theirs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Delete

from bot.kb.models import Lang
from bot.storage.base import StoreBase
from bot.storage.hot_path import _graduate, _user
from bot.storage.models import (
    ConversationRow,
    FeedbackRow,
    MessageLinkRow,
    OutboxRow,
    ProcessedUpdateRow,
    RateBucketRow,
    TicketAttachmentRow,
    TicketEventRow,
    TicketRow,
    TurnRow,
    UnansweredRow,
    UserRow,
)
from bot.storage.records import ConversationRecord, Role, User
from bot.storage.sql import record, rowcount


class UsersMixin(StoreBase):
    """The ``Store``'s users and ``forget_user``."""

    async def get_or_create_user(
        self,
        telegram_id: int,
        display_name: str | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> User:
        """The user with this Telegram id, created on first contact; refreshes
        ``last_seen_at`` (and ``display_name`` when given). Safe under concurrency."""
        now = self.now()
        async with self._tx(session) as s:
            connection = await s.connection()
            return await connection.run_sync(_user, telegram_id, display_name, now)

    async def create_user(self, display_name: str, *, session: AsyncSession | None = None) -> User:
        """A new user without a Telegram chat: a graduate in the terminal (``gradguide
        chat``), one per session."""
        now = self.now()
        row = UserRow(display_name=display_name, role="graduate", created_at=now, last_seen_at=now)
        async with self._tx(session) as s:
            s.add(row)
            await s.flush()
            return record(User, row)

    async def load_graduate(
        self,
        telegram_id: int,
        display_name: str | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> tuple[User, ConversationRecord]:
        """The user and their conversation, as ``get_or_create_user`` then
        ``load_conversation`` give them — in one read for most messages (a known user,
        seen lately, with a conversation)."""
        now = self.now()
        async with self._tx(session) as s:
            connection = await s.connection()
            return await connection.run_sync(_graduate, telegram_id, display_name, now)

    async def get_user(
        self,
        user_id: int | None = None,
        *,
        telegram_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> User | None:
        """A user by id or by Telegram id (exactly one of them)."""
        if (user_id is None) == (telegram_id is None):
            raise ValueError("pass exactly one of user_id and telegram_id")
        condition = (
            UserRow.id == user_id if user_id is not None else UserRow.telegram_id == telegram_id
        )
        async with self._tx(session) as s:
            row = (await s.execute(select(UserRow).where(condition))).scalar_one_or_none()
            return None if row is None else record(User, row)

    async def _set_user(self, user_id: int, session: AsyncSession | None, **values: Any) -> bool:
        async with self._tx(session) as s:
            statement = update(UserRow).where(UserRow.id == user_id).values(**values)
            return rowcount(await self._dml(s, statement)) == 1

    async def set_user_lang(
        self, user_id: int, lang: Lang | None, *, session: AsyncSession | None = None
    ) -> bool:
        return await self._set_user(user_id, session, lang=lang)

    async def set_user_region(
        self, user_id: int, region: str | None, *, session: AsyncSession | None = None
    ) -> bool:
        return await self._set_user(user_id, session, region=region)

    async def set_consent(
        self, user_id: int, given: bool = True, *, session: AsyncSession | None = None
    ) -> bool:
        """Record (or withdraw, ``given=False``) consent to store the conversation."""
        return await self._set_user(user_id, session, consent_at=self.now() if given else None)

    async def set_role(
        self, user_id: int, role: Role, *, session: AsyncSession | None = None
    ) -> bool:
        return await self._set_user(user_id, session, role=role)

    async def forget_user(
        self, user_id: int, *, session: AsyncSession | None = None
    ) -> dict[str, int]:
        """Delete the user and everything that belongs to them; rows deleted per table.

        Also removes outbox items without a ticket whose ``payload["chat_id"]`` is the
        user's Telegram id. Records that merely mention the user as a counsellor (other
        graduates' tickets and their audit trail) are kept.
        """
        conversations = select(ConversationRow.id).where(ConversationRow.user_id == user_id)
        tickets = select(TicketRow.id).where(
            or_(TicketRow.user_id == user_id, TicketRow.conversation_id.in_(conversations))
        )
        counts: dict[str, int] = {}
        async with self._tx(session) as s:
            telegram_id = (
                await s.execute(select(UserRow.telegram_id).where(UserRow.id == user_id))
            ).scalar_one_or_none()
            steps: list[tuple[str, Delete]] = [
                (
                    "ticket_events",
                    delete(TicketEventRow).where(TicketEventRow.ticket_id.in_(tickets)),
                ),
                (
                    "message_links",
                    delete(MessageLinkRow).where(MessageLinkRow.ticket_id.in_(tickets)),
                ),
                ("outbox", delete(OutboxRow).where(OutboxRow.ticket_id.in_(tickets))),
                (
                    "ticket_attachments",
                    delete(TicketAttachmentRow).where(
                        or_(
                            TicketAttachmentRow.ticket_id.in_(tickets),
                            TicketAttachmentRow.conversation_id.in_(conversations),
                        )
                    ),
                ),
                (
                    "feedback",
                    delete(FeedbackRow).where(
                        or_(
                            FeedbackRow.user_id == user_id,
                            FeedbackRow.ticket_id.in_(tickets),
                            FeedbackRow.conversation_id.in_(conversations),
                        )
                    ),
                ),
                ("unanswered", delete(UnansweredRow).where(UnansweredRow.user_id == user_id)),
                ("rate_buckets", delete(RateBucketRow).where(RateBucketRow.user_id == user_id)),
                ("turns", delete(TurnRow).where(TurnRow.conversation_id.in_(conversations))),
                (
                    "tickets",
                    delete(TicketRow).where(
                        or_(
                            TicketRow.user_id == user_id,
                            TicketRow.conversation_id.in_(conversations),
                        )
                    ),
                ),
                (
                    "conversations",
                    delete(ConversationRow).where(ConversationRow.user_id == user_id),
                ),
                ("users", delete(UserRow).where(UserRow.id == user_id)),
            ]
            for table, statement in steps:
                counts[table] = rowcount(await self._dml(s, statement))
            counts["processed_updates"] = 0
            if telegram_id is not None:
                # which updates came from their chat (the one being processed stays, so
                # a replay of the /forget itself is still recognised)
                counts["processed_updates"] = rowcount(
                    await self._dml(
                        s,
                        delete(ProcessedUpdateRow).where(
                            ProcessedUpdateRow.chat_id == telegram_id,
                            ProcessedUpdateRow.status == "done",
                        ),
                    )
                )
                await self._dml(  # what their updates still in process said
                    s,
                    update(ProcessedUpdateRow)
                    .where(ProcessedUpdateRow.chat_id == telegram_id)
                    .values(payload=null()),
                )
                loose = await s.execute(
                    select(OutboxRow.id, OutboxRow.payload).where(OutboxRow.ticket_id.is_(None))
                )
                ids = [
                    row_id
                    for row_id, payload in loose
                    if isinstance(payload, dict) and payload.get("chat_id") == telegram_id
                ]
                if ids:
                    statement = delete(OutboxRow).where(OutboxRow.id.in_(ids))
                    counts["outbox"] += rowcount(await self._dml(s, statement))
        return counts
