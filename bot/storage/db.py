"""The database connection: an async engine, a session factory and the migrations.

``Database(url)`` accepts any SQLAlchemy async URL; GradGuide uses
``sqlite+aiosqlite:///path`` (the default, one file under the data dir) and
``postgresql+asyncpg://user@host/db`` (production). Creating a ``Database`` does not
connect; ``check()`` and ``migrate()`` do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.errors import StorageError

if TYPE_CHECKING:
    from bot.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_MIGRATE_ATTEMPTS = 5
"""How often ``migrate`` tries when SQLite says at once that the new file is locked."""
SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another writer's lock before giving up."""

PG_CONNECT_TIMEOUT_S = 10.0

_MIGRATION_LOCK_KEY = 0x47524144  # "GRAD": serialises concurrent `migrate()` on PostgreSQL

_T = TypeVar("_T")


def mask_url(url: str | URL) -> str:
    """The URL as text with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a database error, without SQLAlchemy's SQL and help links."""
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = exc.orig
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {reason}" if reason else type(cause).__name__


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration for the migrations shipped in this package (no .ini file).

    With ``url`` it can drive Alembic's own commands, e.g. a developer's
    ``command.revision(alembic_config(url), autogenerate=True, message="...")``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest schema revision this GradGuide ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade_to_head(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


class Database:
    """An async engine and session factory for one database URL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            self.url: URL = make_url(url)
        except ArgumentError as exc:
            raise StorageError(f"invalid database URL {mask_url(url)!r}: {exc}") from exc
        self.display_url = mask_url(self.url)
        """The URL with the password masked: safe for logs and error messages."""
        self.dialect = self.url.get_backend_name()
        options: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            self._make_sqlite_dir()
        elif self.dialect == "postgresql":
            options["pool_pre_ping"] = True
            if self.url.get_driver_name() == "asyncpg":
                options["connect_args"] = {"timeout": PG_CONNECT_TIMEOUT_S}
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        self._sync: Engine | None = None
        """SQLite: a synchronous engine on the same file, used by ``run`` on its own thread."""
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine.sync_engine)
            if self._is_file():
                self._sync = create_engine(self.url.set(drivername="sqlite"), echo=echo)
                _install_sqlite_hooks(self._sync)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        self._writer: asyncio.Lock | None = None
        self._thread: ThreadPoolExecutor | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """SQLite has one writer at a time and every transaction here takes the write lock
        up front: the async transactions of this process queue on an asyncio lock instead
        of spinning on SQLite's busy timeout in threads (``run``'s transactions queue on
        the database's own thread instead). (PostgreSQL: no wait.)"""
        if self.dialect != "sqlite":
            yield
            return
        if self._writer is None:
            self._writer = asyncio.Lock()
        async with self._writer:
            yield

    async def run(self, work: Callable[..., _T], *args: Any) -> _T:
        """``work(connection, *args)`` — synchronous SQLAlchemy Core on a ``Connection`` —
        as one transaction: committed when it returns, rolled back if it raises.

        For the statements every message runs. On SQLite the whole transaction runs on
        the database's own thread in one hand-off: through aiosqlite each statement costs
        three or four hand-offs between threads, and under load those, not SQLite, are
        what the event loop spends its time on. On PostgreSQL it runs on an async
        connection (``run_sync``), with no thread at all."""
        if self._sync is None:
            async with self.engine.begin() as connection:
                return await connection.run_sync(work, *args)
        # The one thread queues these transactions; it runs them back to back, without
        # waiting for the event loop in between (as ``turn`` would). One that meets an
        # async transaction waits for it on SQLite's busy timeout, on this thread.
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._run_here, work, args)

    def _run_here(self, work: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        assert self._sync is not None
        with self._sync.begin() as connection:
            return work(connection, *args)

    def _is_file(self) -> bool:
        database = self.url.database
        return bool(database) and database != ":memory:" and not self.url.query.get("uri")

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database named by ``GRADGUIDE_DATABASE_URL`` (default: SQLite in the data dir)."""
        return cls(settings.database_url_or_default)

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.dispose()

    def _make_sqlite_dir(self) -> None:
        database = self.url.database
        if not database or not self._is_file():
            return
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the directory for database {self.display_url}: {exc}"
            ) from exc

    def unavailable(self, exc: BaseException, doing: str = "use") -> StorageError:
        """A ``StorageError`` for ``exc`` that names this database (password masked)."""
        return StorageError(f"cannot {doing} database {self.display_url}: {describe_error(exc)}")

    async def check(self) -> None:
        """Run ``SELECT 1``; raise ``StorageError`` if the database is unreachable."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise self.unavailable(exc, "reach") from exc

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic ``upgrade head``); idempotent.

        Runs on this engine's own connection, so it works inside a running event loop
        (bot start-up) as well as under ``asyncio.run`` from a command line. Concurrent
        callers are serialised: an advisory lock on PostgreSQL, the write lock on SQLite.
        """
        for attempt in range(_MIGRATE_ATTEMPTS):
            try:
                async with self.engine.begin() as connection:
                    if self.dialect == "postgresql":
                        await connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": _MIGRATION_LOCK_KEY},
                        )
                    await connection.run_sync(_upgrade_to_head)
                return
            except (DBAPIError, OSError, CommandError) as exc:
                # SQLite can refuse a second process's statements on a brand-new file at
                # once ("database is locked" without waiting out its busy timeout, e.g.
                # while the other switches it to WAL): wait a moment and try again.
                locked = self.dialect == "sqlite" and "database is locked" in str(exc)
                if locked and attempt + 1 < _MIGRATE_ATTEMPTS:
                    await self.engine.dispose()
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                if isinstance(exc, CommandError):  # e.g. a revision from a newer GradGuide
                    message = f"cannot migrate database {self.display_url}: {exc}"
                    raise StorageError(message) from exc
                raise self.unavailable(exc, "migrate") from exc

    async def revision(self) -> str | None:
        """The schema revision the database is at (None: not migrated yet)."""
        try:
            async with self.engine.connect() as connection:
                return await connection.run_sync(_current_revision)
        except (DBAPIError, OSError) as exc:
            raise self.unavailable(exc, "reach") from exc

    async def dispose(self) -> None:
        """Close every pooled connection. The object can be used again afterwards."""
        await self.engine.dispose()
        if self._sync is not None and self._thread is not None:
            # SQLite connections are closed on the thread that opened them
            await asyncio.get_running_loop().run_in_executor(self._thread, self._sync.dispose)
            self._thread.shutdown()
            self._thread = None


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL, a busy timeout, enforced foreign keys, and BEGIN IMMEDIATE transactions.

    The sqlite3 driver's own transaction handling is switched off (it skips BEGIN for
    SELECT and DDL, which breaks savepoints and transactional DDL). Every transaction
    then starts with BEGIN IMMEDIATE, taking the write lock up front: a transaction
    that reads and then writes can never fail half-way with "database is locked", and
    a concurrent writer waits (up to the busy timeout) instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
