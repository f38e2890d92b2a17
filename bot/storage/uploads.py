"""Knowledge-base uploads: documents an admin sent, until they are ingested."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.base import StoreBase
from bot.storage.models import KbUploadRow
from bot.storage.records import Upload
from bot.storage.sql import json, record, records, rowcount


class UploadsMixin(StoreBase):
    """The ``Store``'s knowledge-base uploads."""

    async def add_upload(
        self,
        admin_telegram_id: int,
        file_name: str,
        telegram_file_id: str,
        *,
        session: AsyncSession | None = None,
    ) -> int:
        """Record a document an admin sent, before it is ingested; returns its id."""
        statement = (
            insert(KbUploadRow)
            .values(
                admin_telegram_id=admin_telegram_id,
                file_name=file_name,
                telegram_file_id=telegram_file_id,
                status="pending",
                created_at=self.now(),
            )
            .returning(KbUploadRow.id)
        )
        async with self._tx(session) as s:
            return (await s.execute(statement)).scalar_one()

    async def get_upload(
        self, upload_id: int, *, session: AsyncSession | None = None
    ) -> Upload | None:
        async with self._tx(session) as s:
            row = await s.get(KbUploadRow, upload_id)
            return None if row is None else record(Upload, row)

    async def pending_uploads(
        self,
        *,
        created_before: dt.datetime | None = None,
        session: AsyncSession | None = None,
    ) -> list[Upload]:
        """Uploads not ingested yet (e.g. interrupted by a restart), oldest first; with
        ``created_before``, only those recorded before that moment."""
        query = select(KbUploadRow).where(KbUploadRow.status == "pending")
        if created_before is not None:
            query = query.where(KbUploadRow.created_at < created_before)
        query = query.order_by(KbUploadRow.created_at, KbUploadRow.id)
        async with self._tx(session) as s:
            return records(Upload, (await s.execute(query)).scalars())

    async def finish_upload(
        self,
        upload_id: int,
        status: Literal["done", "failed"],
        report: dict[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Close a pending upload with the ingest report; False if it was not pending."""
        statement = (
            update(KbUploadRow)
            .where(KbUploadRow.id == upload_id, KbUploadRow.status == "pending")
            .values(
                status=status,
                report=None if report is None else json(report),
                finished_at=self.now(),
            )
        )
        async with self._tx(session) as s:
            return rowcount(await self._dml(s, statement)) == 1
