"""``StoreBase``: the database, the clock and the transactions every mixin of ``Store``
runs its statements in (see ``bot.storage.store``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Delete, Update

from bot.storage.db import Database
from bot.storage.sql import OUTAGES, SYNC, Clock, utcnow

_T = TypeVar("_T")


class StoreBase:
    """What every part of ``Store`` shares: the database, the clock, and transactions."""

    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self.db = db
        self._clock = clock

    def now(self) -> dt.datetime:
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the store's clock must return timezone-aware datetimes")
        return value

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction for several calls: pass the session as ``session=``.

        Commits when the block ends, rolls back if it raises. Database outages surface
        as ``StorageError``.
        """
        try:
            async with self.db.turn(), self.db.sessions() as session, session.begin():
                yield session
        except OUTAGES as exc:
            raise self.db.unavailable(exc) from exc

    @asynccontextmanager
    async def _tx(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        if session is not None:
            yield session
            return
        async with self.transaction() as own:
            yield own

    async def _dml(self, s: AsyncSession, statement: Update | Delete) -> Result[Any]:
        return await s.execute(statement, execution_options=SYNC)

    async def _run(self, work: Callable[..., _T], *args: Any) -> _T:
        """``Database.run`` with outages as ``StorageError`` (as ``transaction``)."""
        try:
            return await self.db.run(work, *args)
        except OUTAGES as exc:
            raise self.db.unavailable(exc) from exc
