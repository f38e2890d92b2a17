"""Rate limits: per-user message counts by the minute, shared by every replica."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.base import StoreBase
from bot.storage.hot_path import _count_message
from bot.storage.models import RateBucketRow
from bot.storage.sql import rowcount


class RateLimitsMixin(StoreBase):
    """The ``Store``'s rate-limit counters."""

    async def count_message(
        self, user_id: int, now: dt.datetime, *, session: AsyncSession | None = None
    ) -> float:
        """Count one message of this user; returns how many they sent in the last minute,
        this one included (a sliding window: this minute's count plus the previous
        minute's, weighted by how much of it is still inside the window). Every replica
        counts in the same rows."""
        async with self._tx(session) as s:
            connection = await s.connection()
            return await connection.run_sync(_count_message, user_id, now)

    async def prune_rate_buckets(
        self, before: dt.datetime, *, session: AsyncSession | None = None
    ) -> int:
        statement = delete(RateBucketRow).where(
            RateBucketRow.minute < int(before.timestamp()) // 60
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement))
