"""Storage fixtures: every test that uses ``db`` or ``store`` runs on SQLite and on
PostgreSQL.

SQLite: a copy of a database migrated once per session, in the test's temp dir.
PostgreSQL: the server at 127.0.0.1:5432 (trust auth; override with
GRADGUIDE_TEST_PG_HOST=host:port). One fresh database ``gradguide_test_<random>`` per
session, migrated once and emptied (TRUNCATE) before each test, dropped at the end. An
unreachable server makes the PostgreSQL tests fail, unless GRADGUIDE_TEST_SKIP_POSTGRES=1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bot.storage import Database, Store
from bot.storage.models import Base

SKIP_ENV = "GRADGUIDE_TEST_SKIP_POSTGRES"
HOST_ENV = "GRADGUIDE_TEST_PG_HOST"
START = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)

T = TypeVar("T")


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private loop in another thread, so that
    session-scoped setup never touches the loop pytest-asyncio gives each test."""

    async def main() -> T:
        return await factory()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


class FakeClock:
    """An injectable clock: returns ``now`` until advanced."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


async def execute_autocommit(url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE need that)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def migrate(url: str) -> None:
    async with Database(url) as database:
        await database.migrate()


def database_url(admin_url: str, name: str) -> str:
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", autouse=True)
def postgres_env() -> dict[str, str]:
    """The PostgreSQL test settings from the environment, read once per session before
    the per-test isolation in tests/conftest.py removes every GRADGUIDE_* variable."""
    return {name: os.environ[name] for name in (SKIP_ENV, HOST_ENV) if name in os.environ}


@pytest.fixture(scope="session")
def postgres_admin_url(postgres_env: dict[str, str]) -> str:
    """A URL to the server's ``test`` database: the OS user if it may log in, else postgres."""
    host = postgres_env.get(HOST_ENV, "127.0.0.1:5432")
    problems: list[str] = []
    for user in dict.fromkeys([getpass.getuser(), "postgres"]):
        url = f"postgresql+asyncpg://{user}@{host}/test"
        try:
            run_async(partial(execute_autocommit, url, "SELECT 1"))
        except Exception as exc:
            problems.append(f"as {user}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        return url
    reasons = "; ".join(problems)
    unreachable = f"PostgreSQL at {host} (database 'test', trust auth) is unreachable ({reasons})"
    if postgres_env.get(SKIP_ENV) == "1":
        pytest.skip(f"{unreachable}; skipped because {SKIP_ENV}=1")
    pytest.fail(
        f"{unreachable}. Start the server, or set {SKIP_ENV}=1 to skip the PostgreSQL "
        "storage tests.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A migrated database of this test session's own, dropped afterwards."""
    name = f"gradguide_test_{uuid.uuid4().hex[:12]}"
    run_async(lambda: execute_autocommit(postgres_admin_url, f'CREATE DATABASE "{name}"'))
    url = database_url(postgres_admin_url, name)
    try:
        run_async(lambda: migrate(url))
        yield url
    finally:
        run_async(
            lambda: execute_autocommit(
                postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            )
        )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file to copy for each test (a copy is faster than migrating)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "gradguide.db"
    run_async(lambda: migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database on each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "db" / "gradguide.db"
        target.parent.mkdir()
        shutil.copyfile(template, target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def truncate_all(database: Database) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with database.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    if database.dialect == "postgresql":
        await truncate_all(database)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db: Database, clock: FakeClock) -> Store:
    return Store(db, clock=clock)


async def count_rows(database: Database, table: str, where: str = "", **params: Any) -> int:
    """Rows in ``table`` (optionally matching a SQL condition), read with plain SQL."""
    query = f'SELECT COUNT(*) FROM "{table}"' + (f" WHERE {where}" if where else "")
    async with database.engine.connect() as connection:
        return int((await connection.execute(text(query), params)).scalar_one())


async def claim_as(
    store: Store, ticket_id: int, telegram_id: int, *, session: AsyncSession | None = None
) -> bool:
    """A claim by the counsellor with this Telegram id (their row made on first use), as
    the Telegram group makes it."""
    counsellor = await store.counsellor(telegram_id=telegram_id, session=session)
    actor = f"counsellor:{telegram_id}"
    return await store.claim(ticket_id, counsellor.id, actor, session=session)


async def new_graduate(store: Store, telegram_id: int) -> tuple[int, int]:
    """A user and their conversation: (user_id, conversation_id)."""
    user = await store.get_or_create_user(telegram_id, f"grad {telegram_id}")
    conversation = await store.load_conversation(user.id)
    return user.id, conversation.id
