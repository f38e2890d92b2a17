"""State that several replicas share through the database: the rate limit and the order
of one chat's updates. Each test runs two stores (two replicas) on one database, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bot.storage import Store
from bot.storage.db import Database
from tests.storage.conftest import FakeClock, new_graduate


@pytest.fixture
async def other_replica(db_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    database = Database(db_url)
    try:
        yield Store(database, clock=clock)
    finally:
        await database.dispose()


async def test_the_rate_limit_counts_messages_on_every_replica(
    store: Store, other_replica: Store, clock: FakeClock
) -> None:
    user_id, _ = await new_graduate(store, 7)
    clock.now = clock.now.replace(second=0, microsecond=0)
    counts = [
        await replica.count_message(user_id, replica.now())
        for replica in (store, other_replica, store, other_replica)
    ]
    assert counts == [1, 2, 3, 4]
    other_user, _ = await new_graduate(store, 8)
    assert await other_replica.count_message(other_user, store.now()) == 1

    # half a minute into the next minute, half of the previous minute still counts
    clock.now += dt.timedelta(seconds=90)
    assert await store.count_message(user_id, store.now()) == pytest.approx(1 + 4 * 0.5)
    # two minutes on, the window has moved past them all
    clock.now += dt.timedelta(minutes=2)
    assert await store.count_message(user_id, store.now()) == 1
    assert await store.prune_rate_buckets(store.now() - dt.timedelta(minutes=1)) == 3


async def test_concurrent_messages_are_each_counted(store: Store, other_replica: Store) -> None:
    user_id, _ = await new_graduate(store, 9)
    now = store.now().replace(second=0)
    counts = await asyncio.gather(
        *(replica.count_message(user_id, now) for replica in (store, other_replica) * 5)
    )
    assert sorted(counts) == list(range(1, 11))


async def test_one_update_of_a_chat_at_a_time_across_replicas(
    store: Store, other_replica: Store, clock: FakeClock
) -> None:
    chat, topic, other_topic = (100, 0), (-1001, 42), (-1001, 43)
    lease = dt.timedelta(seconds=60)
    now = store.now()
    assert await store.lease_chat(chat, 1, now, lease)
    assert not await other_replica.lease_chat(chat, 2, now, lease), "update 1 holds the chat"
    assert await store.lease_chat(chat, 1, now, lease), "the holder may renew"
    assert await other_replica.lease_chat(topic, 3, now, lease), "another chat is free"
    assert await store.lease_chat(other_topic, 4, now, lease), "so is another topic"

    assert not await other_replica.release_chat(chat, 2), "only the holder releases"
    assert await store.release_chat(chat, 1)
    assert await other_replica.lease_chat(chat, 2, now, lease)

    # the holder's replica died: once its lease runs out, the chat moves on
    clock.now += dt.timedelta(seconds=59)
    assert not await store.lease_chat(chat, 5, store.now(), lease)
    clock.now += dt.timedelta(seconds=2)
    assert await store.lease_chat(chat, 5, store.now(), lease)
    assert not await other_replica.release_chat(chat, 2)


async def test_replicas_racing_for_a_chat_get_it_one_at_a_time(
    store: Store, other_replica: Store
) -> None:
    now = store.now()
    lease = dt.timedelta(seconds=60)
    won = await asyncio.gather(
        *(
            replica.lease_chat((7, 0), update_id, now, lease)
            for update_id, replica in enumerate((store, other_replica) * 4, start=10)
        )
    )
    assert won.count(True) == 1, won
