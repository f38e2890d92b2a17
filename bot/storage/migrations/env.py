"""Alembic environment for GradGuide's schema.

``Database.migrate()`` hands over its own connection in ``config.attributes["connection"]``;
Alembic's commands driven by ``bot.storage.db.alembic_config(url)`` open one from the URL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bot.storage.db import Database
from bot.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later migrations copy-and-move tables instead
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    async with Database(url) as database, database.engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()


def _run_offline(url: str) -> None:
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: use bot.storage.db.alembic_config")
    if context.is_offline_mode():
        _run_offline(url)
    else:
        asyncio.run(_run_from_url(url))


_main()
