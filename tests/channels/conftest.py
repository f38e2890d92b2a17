"""The Telegram stack for end-to-end tests: the fake Bot API (real HTTP, spec-checked), the
real python-telegram-bot Application, the bundled knowledge base, and a real database.

``stack`` runs a test on long polling with SQLite and on a webhook with PostgreSQL, so that
each mode and each database is covered by every test (a test that depends on one pairing
names its stacks); GRADGUIDE_TEST_ALL_STACKS=1 runs all four pairings.
``start_bot(**settings)`` starts the bot (call it again after ``restart``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.agent.agent import Agent
from bot.channels.telegram.context import Services
from bot.channels.telegram.webhook import WebhookReceiver
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages
from bot.root import bot_application
from bot.settings import Settings
from bot.storage import Database, Store
from tests.fakes.telegram_server import FakeTelegram, FakeUser
from tests.storage.conftest import (  # noqa: F401  (fixtures shared with the storage tests)
    postgres_admin_url,
    postgres_env,
    postgres_url,
    sqlite_template,
    truncate_all,
)

FORUM = -1001234567890
COUNSELLOR = 501
COUNSELLOR_2 = 502
ADMIN = 901
GRADUATE = 1001
WEBHOOK_SECRET = "s3cret-token_for-tests"

ALL_STACKS = ["polling-sqlite", "webhook-sqlite", "polling-postgresql", "webhook-postgresql"]
STACKS = (
    ALL_STACKS
    if os.environ.get("GRADGUIDE_TEST_ALL_STACKS") == "1"
    else ["polling-sqlite", "webhook-postgresql"]
)


class Clock:
    """The store's clock: real time plus an offset a test can move forward (SLA)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += dt.timedelta(**delta)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "a condition"
) -> None:
    """Poll ``check`` (a database read) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


def private_update(update_id: int, user: FakeUser, message_id: int, text: str) -> dict[str, Any]:
    """A graduate's text message as Telegram's raw update (to replay or POST by hand)."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "from": user.to_api(),
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "date": int(time.time()),
            "text": text,
        },
    }


TINY_DOC = """---
id: tiny-probation-zh
title: 试用期（测试）
lang: zh
authority: 测试机关
issued: 2024-01-01
region: national
---

# 试用期

试用期最长不超过六个月。
"""
"""A one-rule knowledge base for tests that run `gradguide serve` as its own process."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Bot:
    """One running bot process (in this test's event loop)."""

    tg: FakeTelegram
    services: Services
    application: Any
    mode: str
    webhook: WebhookReceiver | None = None
    """Webhook mode: ``gradguide serve``'s receiver (it answers once an update is done)."""

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def messages(self) -> Messages:
        return self.services.messages

    async def stop(self) -> None:
        application = self.application
        if self.webhook is not None:
            await self.webhook.stop()
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()
        self.services.agent_pool.shutdown()


@dataclass
class Stack:
    tg: FakeTelegram
    kb: KnowledgeBase
    mode: str
    backend: str
    db_url: str
    data_dir: Path
    clock: Clock = field(default_factory=Clock)
    bots: list[Bot] = field(default_factory=list)
    databases: list[Database] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": self.data_dir,
            "database_url": self.db_url,
            "telegram_bot_token": self.tg.token,
            "telegram_api_url": self.tg.base_url,
            "counsellor_chat_id": FORUM,
            "counsellor_ids": [COUNSELLOR, COUNSELLOR_2],
            "admin_ids": [ADMIN],
            "office_hours": "daily 00:00-23:59",
            "rate_limit_per_minute": 0,
            "typing_after_s": 0.0,  # always show it, so tests can see it
        }
        values.update(overrides)
        return Settings(**values)

    async def start_bot(self, **overrides: Any) -> Bot:
        settings = self.settings(**overrides)
        database = Database(settings.database_url_or_default)
        self.databases.append(database)
        await database.migrate()
        services = Services(
            settings=settings,
            kb=self.kb,
            agent=Agent(self.kb, self.kb.settings),
            store=Store(database, clock=self.clock),
            messages=Messages.load(),
        )
        application = bot_application(services)
        await application.initialize()
        await application.start()
        assert application.updater is not None
        webhook: WebhookReceiver | None = None
        if self.mode == "webhook":
            webhook = WebhookReceiver(
                application,
                path="telegram",
                secret=WEBHOOK_SECRET,
                update_status=services.store.update_status,
                retry_s=settings.webhook_retry_s,
            )
            port = await webhook.start("127.0.0.1", 0)
            await application.bot.set_webhook(
                f"http://127.0.0.1:{port}/telegram", secret_token=WEBHOOK_SECRET
            )
        else:
            await application.updater.start_polling(poll_interval=0.0, timeout=1)
        bot = Bot(self.tg, services, application, self.mode, webhook)
        self.bots.append(bot)
        return bot

    async def restart(self, bot: Bot, **overrides: Any) -> Bot:
        """Stop this bot and start a fresh process on the same database."""
        await bot.stop()
        self.bots.remove(bot)
        return await self.start_bot(**overrides)

    async def close(self) -> None:
        for bot in self.bots:
            await bot.stop()
        for database in self.databases:
            await database.dispose()


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        fake.forum(FORUM, "GradGuide counsellors")
        yield fake


@pytest.fixture(params=STACKS)
async def stack(
    request: pytest.FixtureRequest,
    tg: FakeTelegram,
    bundled_kb: KnowledgeBase,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    mode, backend = str(request.param).split("-")
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "db" / "gradguide.db"
        target.parent.mkdir()
        shutil.copyfile(template, target)
        url = f"sqlite+aiosqlite:///{target}"
    else:
        url = request.getfixturevalue("postgres_url")
        async with Database(url) as database:
            await truncate_all(database)
    result = Stack(tg, bundled_kb, mode, backend, url, tmp_path / "data")
    try:
        yield result
    finally:
        await result.close()


StartBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def bot(stack: Stack) -> Bot:
    """The bot, started with the default test settings."""
    return await stack.start_bot()
