"""The web console under test: the real FastAPI app (httpx in-process), a real database
migrated by Alembic, a real knowledge base on a temp dir, and the fake Telegram Bot API (real
HTTP) for relays to graduates and for the graduates' files.

Every test that uses ``web_settings`` (and so ``console`` and ``own_console``) runs on SQLite
and on PostgreSQL, like the storage tests (tests/storage/conftest.py): SQLite is a copy of a
database migrated once per session; PostgreSQL is one database per session at 127.0.0.1:5432
(``GRADGUIDE_TEST_PG_HOST``), migrated once and emptied before each test. An unreachable
server fails those tests, unless GRADGUIDE_TEST_SKIP_POSTGRES=1 (then they are skipped, with
the reason).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from telegram import Message

from bot.channels.telegram.graduates import attachment_of
from bot.kb.service import KnowledgeBase
from bot.root import web_services
from bot.settings import Settings
from bot.storage import Database, Store, Ticket
from bot.storage.console_store import Account, Attachment
from bot.web.app import WebServices, create_app
from bot.web.security import hash_password
from tests.channels.conftest import GRADUATE, free_port, tg  # noqa: F401  (the fake Bot API fixture)
from tests.conftest import TODAY, make_markdown
from tests.fakes.telegram_server import FakeTelegram
from tests.storage.conftest import (  # noqa: F401  (fixtures shared with the storage tests)
    db_url,
    postgres_admin_url,
    postgres_env,
    postgres_url,
    sqlite_template,
    truncate_all,
)

PASSWORD = "correct horse battery"
ADMIN_PASSWORD = "admin staple battery"

PROBATION = """# 劳动合同的试用期

## 试用期期限
劳动合同期限三个月以上不满一年的，试用期不得超过一个月；劳动合同期限一年以上不满三年的，试用期不得超过二个月；三年以上固定期限和无固定期限的劳动合同，试用期不得超过六个月。

## 试用期工资
劳动者在试用期的工资不得低于本单位相同岗位最低档工资或者劳动合同约定工资的百分之八十。
"""

HUKOU = """# Settling hukou after graduation

## Who can apply
Graduates who sign an employment contract with an employer in the city within two years
of graduation may apply to settle their hukou there.

## What to bring
The graduation certificate, the employment contract and the personnel-file transfer letter.
"""


class Clock:
    """The store's clock: real time plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += dt.timedelta(**delta)


@contextlib.contextmanager
def gradguide_web(
    tmp_path: Path, account: str, role: str, password: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``gradguide web`` as its own process (hash embeddings, an empty knowledge folder) with
    one account; yields its address and the process, whose output (stdout and stderr
    together) can be read once it has stopped (SIGINT at the end)."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GRADGUIDE_DATA_DIR": str(tmp_path / "data"),
        "GRADGUIDE_KNOWLEDGE_DIR": str(tmp_path / "knowledge"),
        "GRADGUIDE_EMBEDDING": "hash",
        "GRADGUIDE_WEB_PORT": str(port),
    }
    (tmp_path / "knowledge").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "bot"]
    add = subprocess.run(
        [*command, "users", "add", account, "--role", role, "--password-stdin"],
        input=f"{password}\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert add.returncode == 0, add.stderr
    server = subprocess.Popen(
        [*command, "web"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{url}/login", timeout=2, trust_env=False)
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "gradguide web did not start"
                time.sleep(0.3)
        yield url, server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def field_of(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no field {name}"
    return match.group(1)


@dataclass
class Console:
    client: httpx.AsyncClient
    services: WebServices
    tg: FakeTelegram
    clock: Clock
    app: FastAPI
    accounts: dict[str, Account] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.services.store

    async def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        page = await self.client.get("/login")
        return await self.client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        )

    async def logout(self) -> None:
        page = await self.client.get("/queue")
        await self.client.post("/logout", data={"csrf_token": csrf_of(page.text)})
        self.client.cookies.clear()

    async def as_user(self, username: str) -> None:
        self.client.cookies.clear()
        password = ADMIN_PASSWORD if username == "admin" else PASSWORD
        response = await self.login(username, password)
        assert response.status_code == 303, response.text

    async def counsellor_id(self, username: str) -> int:
        """The console account's id on tickets (its counsellor row)."""
        return (await self.services.handoff.directory.account(self.accounts[username])).id

    async def form(self, page: str, action: str, **data: Any) -> httpx.Response:
        """Open ``page``, then submit a form to ``action`` with the page's CSRF token."""
        html = (await self.client.get(page)).text
        return await self.client.post(action, data={"csrf_token": csrf_of(html), **data})

    async def graduate_ticket(
        self,
        text: str = "公司试用期不给我交社保，怎么办？",
        *,
        name: str = "张同学",
        telegram_id: int = GRADUATE,
        priority: str = "normal",
        category: str = "rights",
        draft: str | None = None,
        reason: str = "requested",
    ) -> Ticket:
        """A graduate who wrote to the bot (the fake Telegram knows them) and their ticket."""
        self.tg.user(telegram_id, name, started=True)
        user = await self.store.get_or_create_user(telegram_id, name)
        await self.store.set_user_lang(user.id, "zh")
        conversation = await self.store.load_conversation(user.id)
        await self.store.add_turn(conversation.id, "graduate", text, lang="zh")
        ticket, _ = await self.store.open_ticket(
            conversation.id,
            user.id,
            category,  # type: ignore[arg-type]
            priority,  # type: ignore[arg-type]
            reason,  # type: ignore[arg-type]
            text[:200],
            draft,
            [],
            [{"role": "graduate", "text": text}],
        )
        return ticket

    async def attach(self, ticket: Ticket, update: dict[str, Any]) -> Attachment:
        """Record the file of a graduate's message on ``ticket`` as the bot's ``on_media``
        does; ``update`` is what the fake Bot API made of it (``tg.send_photo``, …), so the
        file can be fetched from it with getFile."""
        message = Message.de_json(update["message"], None)
        assert message is not None
        found = attachment_of(message)
        assert found is not None, "the message carries no file"
        console = self.services.console
        added = await console.add_attachment(
            ticket.id,
            ticket.conversation_id,
            chat_id=message.chat_id,
            message_id=message.message_id,
            caption=message.caption,
            **found,
        )
        assert added is not None
        attachment = await console.get_attachment(added)
        assert attachment is not None
        return attachment


def write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "probation-zh.md").write_text(
        make_markdown(
            PROBATION,
            id="probation-zh",
            title="劳动合同法：试用期",
            topics=["rights"],
            authority="全国人大常委会",
        ),
        encoding="utf-8",
    )
    (folder / "hukou-en.md").write_text(
        make_markdown(
            HUKOU,
            id="hukou-en",
            title="Hukou after graduation",
            lang="en",
            topics=["procedure"],
            authority="Ministry of Public Security",
        ),
        encoding="utf-8",
    )


@pytest.fixture
async def web_db_url(db_url: str) -> str:  # noqa: F811
    """An empty, migrated database on each backend (see the module docstring)."""
    if db_url.startswith("postgresql"):
        async with Database(db_url) as database:
            await truncate_all(database)
    return db_url


@pytest.fixture
def web_settings(tmp_path: Path, tg: FakeTelegram, web_db_url: str) -> Settings:  # noqa: F811
    knowledge = tmp_path / "knowledge"
    write_corpus(knowledge)
    return Settings(
        data_dir=tmp_path / "data",
        knowledge_dir=knowledge,
        embedding="hash",
        database_url=web_db_url,
        telegram_bot_token=tg.token,
        telegram_api_url=tg.base_url,
        web_login_attempts=5,
    )


async def start_console(
    settings: Settings,
    tg: FakeTelegram,  # noqa: F811
    kb: KnowledgeBase | None = None,
) -> Console:
    clock = Clock()
    if kb is None:
        kb = KnowledgeBase.open(settings, clock=lambda: TODAY)
        if not kb.documents():
            report = kb.ingest([settings.knowledge_dir])
            assert not report.failed, report.failed
    services = web_services(settings, kb=kb, clock=clock)
    await services.store.db.migrate()
    await services.reload_curated()
    app = create_app(services)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=60
    )
    console = Console(client, services, tg, clock, app)
    for username, role, password in (
        ("chen", "counsellor", PASSWORD),
        ("li", "counsellor", PASSWORD),
        ("admin", "admin", ADMIN_PASSWORD),
    ):
        console.accounts[username] = await services.console.add_account(
            username,
            {"chen": "陈老师", "li": "李老师", "admin": "Admin"}[username],
            role,  # type: ignore[arg-type]
            hash_password(password),
        )
    return console


async def stop_console(console: Console) -> None:
    await console.client.aclose()
    await console.services.close()
    await console.services.store.db.dispose()


@pytest.fixture(scope="session")
def shared_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The small corpus, indexed once, for tests that do not change documents."""
    root = tmp_path_factory.mktemp("web-kb")
    write_corpus(root / "knowledge")
    settings = Settings(data_dir=root / "data", knowledge_dir=root / "knowledge", embedding="hash")
    kb = KnowledgeBase.open(settings, clock=lambda: TODAY)
    report = kb.ingest([settings.knowledge_dir])
    assert not report.failed, report.failed
    return kb


@pytest.fixture
async def console(
    web_settings: Settings,
    tg: FakeTelegram,  # noqa: F811
    shared_kb: KnowledgeBase,
) -> AsyncIterator[Console]:
    """The console on the shared corpus (tests must not change its documents)."""
    started = await start_console(web_settings, tg, shared_kb)
    try:
        yield started
    finally:
        await stop_console(started)


@pytest.fixture
async def own_console(web_settings: Settings, tg: FakeTelegram) -> AsyncIterator[Console]:  # noqa: F811
    """The console on a corpus of its own: documents may be uploaded, expired, removed."""
    started = await start_console(web_settings, tg)
    try:
        yield started
    finally:
        await stop_console(started)
