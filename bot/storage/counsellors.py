"""Counsellors: one row per person whichever front end they work in (a Telegram id, a
console account, or both), and the single row of the command line."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import StorageError
from bot.storage.base import StoreBase
from bot.storage.models import CounsellorRow
from bot.storage.records import CounsellorRecord
from bot.storage.sql import record, records, upsert


class CounsellorsMixin(StoreBase):
    """The ``Store``'s counsellors (who may hold a ticket is the handoff ``Directory``'s
    rule; this only keeps the rows)."""

    async def counsellor(
        self,
        *,
        telegram_id: int | None = None,
        account_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> CounsellorRecord:
        """The counsellor with this console account or Telegram id, made on first use.

        The account decides first: a person with both is one row, and a Telegram id seen
        before the account was linked to it is linked now (unless another row already
        holds that id, e.g. one made before the link: that row keeps its old tickets).

        Races: two processes making the same person at once both insert with ``ON
        CONFLICT DO NOTHING`` (the ids are unique) and read the one row back."""
        if telegram_id is None and account_id is None:
            raise ValueError("a counsellor needs a Telegram id or a console account")
        async with self._tx(session) as s:
            found = await self._find_counsellor(s, telegram_id, account_id)
            if found is None:
                await s.execute(
                    upsert(self.db.dialect, CounsellorRow)
                    .values(
                        kind="person",
                        telegram_id=telegram_id,
                        account_id=account_id,
                        created_at=self.now(),
                    )
                    .on_conflict_do_nothing()
                )
                found = await self._find_counsellor(s, telegram_id, account_id)
            if found is None:  # the insert met a row holding the other id
                raise StorageError(f"counsellor for account {account_id} not made")
            if found.account_id is None and account_id is not None:
                await self._dml(
                    s,
                    update(CounsellorRow)
                    .where(CounsellorRow.id == found.id)
                    .values(account_id=account_id),
                )
            held = telegram_id is not None and await s.scalar(
                select(CounsellorRow.id).where(CounsellorRow.telegram_id == telegram_id)
            )
            if found.telegram_id is None and telegram_id is not None and not held:
                await self._dml(
                    s,
                    update(CounsellorRow)
                    .where(CounsellorRow.id == found.id)
                    .values(telegram_id=telegram_id),
                )
            row = await s.get(CounsellorRow, found.id, populate_existing=True)
            assert row is not None
            return record(CounsellorRecord, row)

    async def _find_counsellor(
        self, s: AsyncSession, telegram_id: int | None, account_id: int | None
    ) -> CounsellorRow | None:
        if account_id is not None:
            by_account = await s.scalar(
                select(CounsellorRow).where(CounsellorRow.account_id == account_id)
            )
            if by_account is not None:
                return by_account
        if telegram_id is None:
            return None
        return await s.scalar(select(CounsellorRow).where(CounsellorRow.telegram_id == telegram_id))

    async def cli_counsellor(self, *, session: AsyncSession | None = None) -> CounsellorRecord:
        """The row standing for ``gradguide handoffs`` (made by the migration, or now).

        Races: a partial unique index allows one 'cli' row; a second insert does nothing."""
        async with self._tx(session) as s:
            query = select(CounsellorRow).where(CounsellorRow.kind == "cli")
            row = await s.scalar(query)
            if row is None:
                await s.execute(
                    upsert(self.db.dialect, CounsellorRow)
                    .values(kind="cli", created_at=self.now())
                    .on_conflict_do_nothing()
                )
                row = await s.scalar(query)
            assert row is not None
            return record(CounsellorRecord, row)

    async def counsellors(
        self, ids: list[int] | None = None, *, session: AsyncSession | None = None
    ) -> list[CounsellorRecord]:
        """Every counsellor row (or those with these ids), oldest first."""
        query = select(CounsellorRow).order_by(CounsellorRow.id)
        if ids is not None:
            query = query.where(CounsellorRow.id.in_(ids))
        async with self._tx(session) as s:
            return records(CounsellorRecord, (await s.scalars(query)).all())
