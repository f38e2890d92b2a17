"""Users, conversations (optimistic state saves) and turns."""

from __future__ import annotations

import asyncio

import pytest

from bot.agent.models import Conversation, Turn
from bot.storage import Store
from tests.storage.conftest import START, FakeClock

BIG_TELEGRAM_ID = 7_123_456_789  # beyond 32 bits, as real Telegram ids are


async def test_get_or_create_user_is_race_safe_and_refreshes(
    store: Store, clock: FakeClock
) -> None:
    users = await asyncio.gather(*(store.get_or_create_user(BIG_TELEGRAM_ID) for _ in range(8)))
    assert len({user.id for user in users}) == 1
    first = users[0]
    assert first.telegram_id == BIG_TELEGRAM_ID
    assert first.role == "graduate"
    assert first.lang is None
    assert first.created_at == START

    clock.advance(hours=1)
    again = await store.get_or_create_user(BIG_TELEGRAM_ID, "Li Hua")
    assert again.id == first.id
    assert again.display_name == "Li Hua"
    assert again.created_at == START
    assert again.last_seen_at == clock.now
    assert await store.get_user(telegram_id=BIG_TELEGRAM_ID) == again
    assert await store.get_user(first.id) == again
    assert await store.get_user(first.id + 1000) is None
    with pytest.raises(ValueError):
        await store.get_user()


async def test_user_settings(store: Store, clock: FakeClock) -> None:
    user = await store.get_or_create_user(42)
    assert await store.set_user_lang(user.id, "en")
    assert await store.set_user_region(user.id, "guangdong")
    assert await store.set_consent(user.id)
    assert await store.set_role(user.id, "counsellor")
    updated = await store.get_user(user.id)
    assert updated is not None
    assert (updated.lang, updated.region, updated.role) == ("en", "guangdong", "counsellor")
    assert updated.consent_at == clock.now
    assert await store.set_consent(user.id, False)
    withdrawn = await store.get_user(user.id)
    assert withdrawn is not None and withdrawn.consent_at is None
    assert not await store.set_user_lang(user.id + 99, "zh")  # no such user


async def test_conversation_state_round_trip_and_optimistic_saves(store: Store) -> None:
    user = await store.get_or_create_user(42)
    record = await store.load_conversation(user.id)
    assert (record.state, record.owner, record.version) == ({}, "bot", 0)
    assert (await store.load_conversation(user.id)).id == record.id  # one per user

    conversation = Conversation(id=str(record.id), lang="zh", region="beijing")
    conversation.turns.append(Turn(role="user", text="怎么办理报到证？", doc_ids=["a", "b"]))
    state = conversation.model_dump(mode="json")
    assert await store.save_state(record.id, state, expected_version=0)

    loaded = await store.load_conversation(user.id)
    assert loaded.version == 1
    assert Conversation.model_validate(loaded.state) == conversation

    # a second writer that read version 0 loses and must reload
    assert not await store.save_state(record.id, {"stale": True}, expected_version=0)
    assert (await store.load_conversation(user.id)).state == state


async def test_concurrent_saves_with_the_same_version_one_wins(store: Store) -> None:
    user = await store.get_or_create_user(42)
    record = await store.load_conversation(user.id)
    results = await asyncio.gather(
        *(store.save_state(record.id, {"n": n}, expected_version=0) for n in range(6))
    )
    assert sorted(results) == [False] * 5 + [True]
    assert (await store.load_conversation(user.id)).version == 1


async def test_concurrent_first_loads_create_one_conversation(store: Store) -> None:
    user = await store.get_or_create_user(42)
    records = await asyncio.gather(*(store.load_conversation(user.id) for _ in range(6)))
    assert len({record.id for record in records}) == 1


async def test_load_conversation_of_unknown_user(store: Store) -> None:
    with pytest.raises(LookupError):
        await store.load_conversation(12345)


async def test_set_owner_with_expected_owner(store: Store) -> None:
    user = await store.get_or_create_user(42)
    record = await store.load_conversation(user.id)
    assert not await store.set_owner(record.id, "assigned", expected="queued")
    assert await store.set_owner(record.id, "queued", expected="bot")
    assert await store.set_owner(record.id, "assigned")
    assert (await store.load_conversation(user.id)).owner == "assigned"


async def test_recent_turns_oldest_first(store: Store, clock: FakeClock) -> None:
    user = await store.get_or_create_user(42)
    record = await store.load_conversation(user.id)
    for n in range(5):
        clock.advance(seconds=1)
        await store.add_turn(
            record.id,
            "graduate" if n % 2 == 0 else "bot",
            f"message {n}",
            lang="zh",
            intent="policy",
            confidence=0.5,
            citations=["doc-1"],
            telegram_message_id=100 + n,
        )
    turns = await store.recent_turns(record.id, limit=3)
    assert [turn.text for turn in turns] == ["message 2", "message 3", "message 4"]
    assert turns[0].role == "graduate"
    assert turns[0].citations == ["doc-1"]
    assert turns[0].telegram_message_id == 102
    assert turns[0].handoff is False
