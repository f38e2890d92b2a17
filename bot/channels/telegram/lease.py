"""The lease on outbox items while this process sends them (``Desk.send_queued``).

An item queued by this process is leased to it for ``GRADGUIDE_CHAT_LEASE_S``; the outbox
job of any process takes over an item whose lease has passed. A send can take longer than
the lease (a 429 waited out), so the lease is renewed while it runs; a renewal that finds
the item taken over by another process records it as lost, and the item is not sent here
(the other process sends it): the race is settled by ``Store.renew``'s conditional update.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence

from bot.errors import StorageError
from bot.storage.store import OutboxItem, Store

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The outbox item's lease ran out while this process still meant to send it: the
    outbox job may be sending it now, so this process does not."""


class SendLease:
    """Keeps outbox items leased while they are being sent (a 429 may be waited out for
    longer than the lease): renewed every third of it, only if the sending takes that long.
    A renewal that finds an item no longer held records it as lost."""

    def __init__(self, store: Store, items: Sequence[OutboxItem], length: dt.timedelta) -> None:
        self._store = store
        self._length = length
        self._held_until = items[0].next_attempt_at
        self._pending = [item.id for item in items]
        self.lost: set[int] = set()
        self._stop = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._every, self._begin)

    @property
    def _every(self) -> float:
        return max(self._length.total_seconds() / 3, 0.05)

    def _begin(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._renew())

    def sent(self, item_id: int) -> None:
        with contextlib.suppress(ValueError):
            self._pending.remove(item_id)

    def check(self, item_id: int) -> Callable[[], None]:
        def still_ours() -> None:
            if item_id in self.lost:
                raise LeaseLost(item_id)

        return still_ours

    async def _renew(self) -> None:
        while not self._stop.is_set():
            ids = [item_id for item_id in self._pending if item_id not in self.lost]
            if not ids:
                return
            until = self._store.now() + self._length
            try:
                kept = await self._store.renew(ids, self._held_until, until)
            except StorageError as exc:  # the next renewal may succeed; the lease still runs
                logger.warning("outbox lease of %s not renewed: %s", ids, exc)
            else:
                self._held_until = until
                self.lost.update(i for i in ids if i not in kept and i in self._pending)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._every)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._stop.set()
        if self._task is not None:
            await self._task


class ChatRenewal:
    """Renews a chat's lease while its update is still being processed (an answer held up
    by Telegram's flood control can take longer than the lease): another replica takes the
    chat over only when this one has really stopped.

    Stopped, never cancelled: a cancel could land while a renewal's transaction is open,
    and a transaction cut off half-way can keep SQLite's write lock in its connection's
    thread — every other writer then waits out the busy timeout (30 s) and fails with
    "database is locked". ``stop`` lets the renewal in progress finish, so the chat can be
    handed on right after it without this renewal taking it back."""

    def __init__(
        self, store: Store, chat: tuple[int, int], update_id: int, lease: dt.timedelta
    ) -> None:
        self._store, self._chat, self._update_id, self._lease = store, chat, update_id, lease
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        every = self._lease.total_seconds() / 3
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every)
                return
            try:
                store = self._store
                await store.lease_chat(self._chat, self._update_id, store.now(), self._lease)
            except StorageError as exc:  # the next renewal may succeed; the lease still runs
                logger.warning("chat lease of update %d not renewed: %s", self._update_id, exc)

    async def stop(self) -> None:
        self._stop.set()
        await self._task
