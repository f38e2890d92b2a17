"""Database: migrations from empty, idempotence, model/migration parity, connection
settings, restart, and clear errors for an unreachable database."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, Connection, inspect, text

from bot.settings import Settings
from bot.storage import Database, StorageError, Store
from bot.storage.models import Base
from tests.storage.conftest import (
    FakeClock,
    count_rows,
    database_url,
    execute_autocommit,
    new_graduate,
)

TABLES = {
    "users",
    "conversations",
    "turns",
    "tickets",
    "ticket_events",
    "message_links",
    "outbox",
    "feedback",
    "unanswered",
    "processed_updates",
    "kb_uploads",
    "rate_buckets",
    "chat_leases",
    "web_accounts",
    "web_sessions",
    "web_login_attempts",
    "web_audit",
    "canned_replies",
    "curated_answers",
    "ticket_attachments",
    "erasures",
}
HEAD = "0008"
"""The newest migration."""


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables at all (SQLite: a file that does not exist yet)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'new' / 'dir' / 'gradguide.db'}"
        return
    admin: str = request.getfixturevalue("postgres_admin_url")
    name = f"gradguide_test_{uuid.uuid4().hex[:12]}"
    await execute_autocommit(admin, f'CREATE DATABASE "{name}"')
    try:
        yield database_url(admin, name)
    finally:
        await execute_autocommit(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def table_names(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_migrate_creates_every_table_from_empty_and_is_idempotent(empty_url: str) -> None:
    async with Database(empty_url) as database:
        assert await database.revision() is None
        await database.migrate()
        assert await table_names(database) == TABLES | {"alembic_version"}
        assert await database.revision() == HEAD
        await database.migrate()  # a second start-up changes nothing
        assert await database.revision() == HEAD


async def test_concurrent_migrations_do_not_collide(empty_url: str) -> None:
    """Two processes starting at once (bot and worker) both run migrate()."""
    first, second = Database(empty_url), Database(empty_url)
    try:
        await asyncio.gather(first.migrate(), second.migrate())
        assert await table_names(first) == TABLES | {"alembic_version"}
    finally:
        await first.dispose()
        await second.dispose()


async def test_migrate_from_a_synchronous_command_line(empty_url: str) -> None:
    """A CLI calls asyncio.run(database.migrate()) with no loop running in its thread."""

    def cli() -> None:
        async def main() -> None:
            async with Database(empty_url) as database:
                await database.migrate()

        asyncio.run(main())

    await asyncio.to_thread(cli)
    async with Database(empty_url) as database:
        assert await database.revision() == HEAD


async def test_models_and_migration_agree(db: Database) -> None:
    """Alembic autogenerate finds nothing to add: the migration matches the models."""

    async with db.engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
    assert diff == []

    def check_names(sync: Connection) -> dict[str, set[str]]:
        inspector = inspect(sync)
        return {
            table: {str(check["name"]) for check in inspector.get_check_constraints(table)}
            for table in TABLES
        }

    expected = {
        table.name: {
            str(constraint.name)
            for constraint in table.constraints
            if isinstance(constraint, CheckConstraint)
        }
        for table in Base.metadata.tables.values()
    }
    async with db.engine.connect() as connection:
        assert await connection.run_sync(check_names) == expected  # not compared by alembic


async def test_sqlite_connection_settings(tmp_path: Path) -> None:
    async with (
        Database(f"sqlite+aiosqlite:///{tmp_path / 'gradguide.db'}") as db,
        db.engine.connect() as connection,
    ):
        assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one() == "wal"
        assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
        assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() >= 1000


async def test_timestamps_come_back_as_utc_on_every_backend(db: Database) -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    local = dt.datetime(2026, 11, 26, 17, 30, 15, 123456, tzinfo=shanghai)
    store = Store(db, clock=lambda: local)
    user = await store.get_or_create_user(7)
    assert user.created_at == local
    assert user.created_at.tzinfo == dt.UTC
    assert user.created_at.hour == 9
    naive = Store(db, clock=lambda: dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        await naive.get_or_create_user(8)


async def test_restart_keeps_tickets_and_events(db_url: str, clock: FakeClock) -> None:
    async with Database(db_url) as first:
        store = Store(first, clock=clock)
        user_id, conversation_id = await new_graduate(store, 1001)
        ticket, _ = await store.open_ticket(
            conversation_id, user_id, "rights", "high", "requested", "unpaid wages", None
        )
        assert await store.claim(ticket.id, 555)
    async with Database(db_url) as second:
        store = Store(second, clock=clock)
        again = await store.get_ticket(ticket.id)
        assert again is not None
        assert again.status == "assigned"
        assert again.assignee_telegram_id == 555
        assert [event.kind for event in await store.events(ticket.id)] == ["created", "claimed"]
        assert (await store.load_conversation(user_id)).owner == "assigned"


async def test_unreachable_postgres_is_a_clear_storage_error() -> None:
    database = Database("postgresql+asyncpg://gradguide:s3cret-pw@127.0.0.1:1/gradguide")
    try:
        with pytest.raises(StorageError) as caught:
            await database.check()
        message = str(caught.value)
        assert "cannot reach database postgresql+asyncpg://gradguide:***@127.0.0.1:1/gradguide" in (
            message
        )
        assert "s3cret-pw" not in message
        assert "s3cret-pw" not in repr(database)
        with pytest.raises(StorageError, match=r"\*\*\*"):
            await database.migrate()
        with pytest.raises(StorageError, match="cannot use database"):
            await Store(database).get_user(1)
    finally:
        await database.dispose()


async def test_sqlite_file_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="not-a-directory"):
        Database(f"sqlite+aiosqlite:///{blocker / 'gradguide.db'}")


async def test_reachable_database_passes_check(db: Database) -> None:
    await db.check()
    async with db.engine.connect() as connection:
        assert (await connection.execute(text("SELECT 1"))).scalar() == 1


async def test_from_settings_defaults_to_sqlite_in_the_data_dir(settings: Settings) -> None:
    async with Database.from_settings(settings) as database:
        assert database.dialect == "sqlite"
        await database.migrate()
        assert (settings.data_dir / "gradguide.db").exists()
        assert await count_rows(database, "users") == 0


async def test_a_schema_from_a_newer_version_is_a_clear_error(db: Database) -> None:
    async with db.engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StorageError, match="9999"):
        await db.migrate()
