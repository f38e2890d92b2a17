"""Database: migrations from empty, idempotence, model/migration parity, connection
settings, restart, and clear errors for an unreachable database."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, Connection, inspect, text

from bot.settings import Settings
from bot.storage import Database, StorageError, Store
from bot.storage.db import alembic_config
from bot.storage.models import Base
from tests.storage.conftest import (
    FakeClock,
    claim_as,
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
    "counsellors",
}
HEAD = "0009"
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


def _tickets_held_the_old_way(connection: Connection, holders: list[int | None]) -> None:
    """At revision 0008: two console accounts (陈老师 also in Telegram as 555), a graduate,
    and one ticket per holder, written as 0008 wrote them, each with an event."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "0008")
    moment = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    at = moment.replace(tzinfo=None) if connection.dialect.name == "sqlite" else moment
    connection.execute(
        text(
            "INSERT INTO web_accounts (id, username, display_name, role, password_hash, "
            "telegram_id, active, created_at) VALUES (1, 'li', '李老师', 'counsellor', 'x', "
            "NULL, true, :at), (2, 'chen', '陈老师', 'counsellor', 'x', 555, true, :at)"
        ),
        {"at": at},
    )
    connection.execute(
        text(
            "INSERT INTO users (id, telegram_id, role, created_at, last_seen_at) "
            "VALUES (1, 9001, 'graduate', :at, :at)"
        ),
        {"at": at},
    )
    connection.execute(
        text(
            "INSERT INTO conversations (id, user_id, state, owner, version, updated_at) "
            "VALUES (1, 1, '{}', 'bot', 0, :at)"
        ),
        {"at": at},
    )
    for number, holder in enumerate(holders, start=1):
        connection.execute(
            text(
                "INSERT INTO tickets (id, conversation_id, user_id, status, category, priority, "
                "reason, summary, citations, transcript, assignee_telegram_id, created_at) "
                "VALUES (:id, 1, 1, 'resolved', 'rights', 'normal', 'requested', '欠薪', "
                "'[]', '[]', :holder, :at)"
            ),
            {"id": number, "holder": holder, "at": at},
        )
        connection.execute(
            text(
                "INSERT INTO ticket_events (ticket_id, kind, actor, data, created_at) "
                "VALUES (:id, 'claimed', 'cli', '{}', :at)"
            ),
            {"id": number, "at": at},
        )


async def test_counsellors_become_one_identity_and_every_ticket_keeps_its_holder(
    empty_url: str,
) -> None:
    """0009: a Telegram id, a console account (stored as minus its id) and the command
    line (0) each become a counsellor row; a Telegram id a console account carries is that
    account's row; tickets and their trails are all still there."""
    holders: list[int | None] = [555, -1, 0, 777, None, 555]
    async with Database(empty_url) as database:
        async with database.engine.begin() as connection:
            await connection.run_sync(_tickets_held_the_old_way, holders)
        await database.migrate()
        assert await database.revision() == HEAD
        store = Store(database)
        rows = {row.id: row for row in await store.counsellors()}
        held = [await store.get_ticket(number) for number in range(1, len(holders) + 1)]
        people = [None if t is None or t.assignee_id is None else rows[t.assignee_id] for t in held]
        chen, li, cli, stranger, nobody, chen_again = people
        assert chen is not None and (chen.telegram_id, chen.account_id) == (555, 2)
        assert chen_again == chen
        assert li is not None and (li.telegram_id, li.account_id) == (None, 1)
        assert cli is not None and cli.kind == "cli" and cli == await store.cli_counsellor()
        assert stranger is not None and (stranger.telegram_id, stranger.account_id) == (777, None)
        assert nobody is None and held[4] is not None
        assert len(rows) == 4
        assert await count_rows(database, "ticket_events") == len(holders)
        # the console account and its Telegram id stay one person from now on
        assert await store.counsellor(telegram_id=555) == chen
        assert await store.counsellor(account_id=2, telegram_id=555) == chen


async def test_restart_keeps_tickets_and_events(db_url: str, clock: FakeClock) -> None:
    async with Database(db_url) as first:
        store = Store(first, clock=clock)
        user_id, conversation_id = await new_graduate(store, 1001)
        ticket, _ = await store.open_ticket(
            conversation_id, user_id, "rights", "high", "requested", "unpaid wages", None
        )
        assert await claim_as(store, ticket.id, 555)
    async with Database(db_url) as second:
        store = Store(second, clock=clock)
        again = await store.get_ticket(ticket.id)
        assert again is not None
        assert again.status == "assigned"
        holder = await store.counsellor(telegram_id=555)
        assert again.assignee_id == holder.id
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
