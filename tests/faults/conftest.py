"""One scale-out cluster for the fault tests (tests/cluster.py: its own PostgreSQL server, a
Chroma server, webhook replicas, the fake Bot API), started once per module, and put back in
order before each test (faults cleared, Chroma and PostgreSQL up, two live replicas), so each
scenario stands alone with fresh graduates."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from bot.storage.db import Database
from bot.storage.models import OutboxRow, ProcessedUpdateRow
from bot.storage.store import Store, Ticket
from tests.cluster import COUNSELLOR, Cluster
from tests.fakes.telegram_server import FakeTelegram, FakeUser

T = TypeVar("T")

REPLICAS = 2
SETTINGS = {
    # a replica that dies mid-update holds its chat this long (then the other one moves on)
    "chat_lease_s": "3",
    "rate_limit_per_minute": "0",
}
DEFAULT_TIMEOUT_HOLD_S = 3.0

_ids = itertools.count(30_000_001)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("cluster"), replicas=REPLICAS, **SETTINGS) as running:
        yield running


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def restore(cluster: Cluster) -> None:
    """Back to a healthy cluster: no injected faults, Chroma and PostgreSQL up, two live
    replicas behind the load balancer."""
    tg = cluster.tg
    tg.clear_faults()
    tg.timeout_hold_s = DEFAULT_TIMEOUT_HOLD_S
    if not _port_open(cluster.postgres.port):
        cluster.postgres.start()
    process = cluster.chroma.process
    if process is None or process.poll() is not None:
        cluster.chroma.start()
    live = [r for r in cluster.replicas if r.process is not None and r.process.poll() is None]
    for _ in range(REPLICAS - len(live)):
        cluster.add_replica()
    cluster.route()


@pytest.fixture(autouse=True)
def healthy(cluster: Cluster) -> Iterator[Cluster]:
    restore(cluster)
    yield cluster
    restore(cluster)
    with contextlib.suppress(AssertionError):  # let this test's stragglers finish
        cluster.tg.wait_idle(timeout=30, quiet=0.5)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing fault test shows the bot processes' logs (the cluster's replicas, or a
    test's own polling process: any fixture with ``logs()``)."""
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            logs = getattr(value, "logs", None)
            if isinstance(value, Cluster):
                report.sections.append(("replica logs", value.logs(6000)))
            elif callable(logs):
                report.sections.append((f"{name} logs", str(logs())))
    return report


# -- people -------------------------------------------------------------------------------


def graduate(tg: FakeTelegram, lang: str = "zh") -> FakeUser:
    """A graduate who has never written to the bot (a fresh id for every call)."""
    user_id = next(_ids)
    name = "张" if lang == "zh" else "Alex Chen"
    return tg.user(user_id, name, language_code=lang)


def counsellor(tg: FakeTelegram) -> FakeUser:
    return tg.user(COUNSELLOR, "陈老师", started=True)


# -- waiting and the database -----------------------------------------------------------


def eventually(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Records:
    """The cluster's database as a test reads it (a short-lived connection per question)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _run(self, read: Callable[[Store], Awaitable[T]]) -> T:
        async def go() -> T:
            db = Database(self.url)
            try:
                return await read(Store(db))
            finally:
                await db.dispose()

        return asyncio.run(go())

    def tickets_of(self, user: FakeUser) -> list[Ticket]:
        async def read(store: Store) -> list[Ticket]:
            record = await store.get_user(telegram_id=user.id)
            if record is None:
                return []
            tickets = await store.list_tickets(limit=10_000)
            return sorted((t for t in tickets if t.user_id == record.id), key=lambda t: t.id)

        return self._run(read)

    def ticket(self, ticket_id: int) -> Ticket | None:
        return self._run(lambda store: store.get_ticket(ticket_id))

    def all_tickets(self) -> list[Ticket]:
        return self._run(lambda store: store.list_tickets(limit=10_000))

    def outbox_waiting(self) -> int:
        """Outbox items still to be delivered (not sent, not given up)."""

        async def read(store: Store) -> int:
            async with store.transaction() as session:
                rows = await session.execute(
                    select(OutboxRow.id).where(OutboxRow.status == "pending")
                )
                return len(rows.all())

        return self._run(read)

    def processing(self) -> list[int]:
        """Updates claimed and not finished ('processing')."""

        async def read(store: Store) -> list[int]:
            async with store.transaction() as session:
                rows = await session.execute(
                    select(ProcessedUpdateRow.update_id).where(
                        ProcessedUpdateRow.status == "processing"
                    )
                )
                return [int(update_id) for update_id in rows.scalars()]

        return self._run(read)


@pytest.fixture
def records(cluster: Cluster) -> Records:
    return Records(cluster.postgres.url)
