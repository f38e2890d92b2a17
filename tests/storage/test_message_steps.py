"""The steps every message takes, each one transaction (``Store.begin_update``,
``finish_exchange``, ``end_update``): what they claim, read and write, on SQLite (where
they run on the database's own thread) and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from bot.storage import NewTurn, Send, Store
from tests.storage.conftest import FakeClock, count_rows, new_graduate

LEASE = dt.timedelta(seconds=60)


async def test_a_new_update_is_claimed_with_its_chat_and_the_graduate_read(
    store: Store, clock: FakeClock
) -> None:
    user_id, conversation_id = await new_graduate(store, 42)
    begun = await store.begin_update(1, (42, 0), LEASE, graduate=(42, None), count=True)
    assert begun is not None and begun.ours
    assert begun.graduate is not None
    user, conversation = begun.graduate
    assert (user.id, user.telegram_id, conversation.id) == (user_id, 42, conversation_id)
    assert conversation.owner == "bot"
    assert begun.sent_last_minute == 1
    assert await count_rows(store.db, "processed_updates", "status = 'processing'") == 1

    # the same update again (a replayed webhook): not new, so the long way decides
    assert await store.begin_update(1, (42, 0), LEASE, graduate=(42, None)) is None
    assert not await store.claim_update(1, store.now(), dt.timedelta(minutes=5))


async def test_the_next_update_of_a_busy_chat_waits_for_it(store: Store) -> None:
    await new_graduate(store, 42)
    first = await store.begin_update(1, (42, 0), LEASE)
    second = await store.begin_update(2, (42, 0), LEASE, graduate=(42, None))
    assert first is not None and first.ours
    assert second is not None and not second.ours and second.graduate is None  # read later
    other_chat = await store.begin_update(3, (43, 0), LEASE)
    assert other_chat is not None and other_chat.ours

    await store.end_update(1, (42, 0))
    assert await store.lease_chat((42, 0), 2, store.now(), LEASE)
    assert await count_rows(store.db, "processed_updates", "status = 'done'") == 1


async def test_a_new_renamed_or_returning_graduate_is_written_on_the_way(
    store: Store, clock: FakeClock
) -> None:
    """The first step creates a new graduate (with a conversation), takes a new name and
    refreshes ``last_seen_at`` of one back after a while — as ``load_graduate`` does."""
    new = await store.begin_update(1, (50, 0), LEASE, graduate=(50, "新同学"), count=True)
    assert new is not None and new.graduate is not None
    user, conversation = new.graduate
    assert (user.telegram_id, user.display_name, user.role) == (50, "新同学", "graduate")
    assert (conversation.user_id, conversation.owner, conversation.state) == (user.id, "bot", {})
    assert new.sent_last_minute == 1
    assert await count_rows(store.db, "users") == 1
    assert await count_rows(store.db, "conversations") == 1
    await store.end_update(1, (50, 0))

    renamed = await store.begin_update(2, (50, 0), LEASE, graduate=(50, "王同学"))
    assert renamed is not None and renamed.graduate is not None
    assert renamed.graduate[0].display_name == "王同学"
    assert renamed.graduate[1].id == conversation.id  # the same conversation

    await store.end_update(2, (50, 0))
    clock.advance(minutes=30)
    back = await store.begin_update(3, (50, 0), LEASE, graduate=(50, None))
    assert back is not None and back.graduate is not None
    assert back.graduate[0].last_seen_at == store.now()
    assert back.graduate[0].display_name == "王同学"  # no name given: the name stays
    assert await count_rows(store.db, "users") == 1
    assert await count_rows(store.db, "conversations") == 1


async def test_an_answer_is_recorded_only_while_the_bot_owns_the_conversation(
    store: Store,
) -> None:
    user_id, conversation_id = await new_graduate(store, 42)
    question = NewTurn("graduate", "试用期多长？", lang="zh", telegram_message_id=7)
    answer = NewTurn("bot", "不超过六个月。", lang="zh", intent="answer", citations=("d1",))
    await store.begin_update(1, (42, 0), LEASE)
    exchange = await store.finish_exchange(1, conversation_id, {"lang": "zh"}, question, answer)
    assert exchange is not None and exchange.queued == ()
    turns = await store.recent_turns(conversation_id)
    assert [(t.role, t.text) for t in turns] == [("graduate", question.text), ("bot", answer.text)]
    assert turns[-1].id == exchange.turn and turns[-1].citations == ["d1"]
    conversation = await store.load_conversation(user_id)
    assert conversation.state == {"lang": "zh"} and conversation.version == 1
    assert await count_rows(store.db, "processed_updates", "status = 'done'") == 1

    # a counsellor takes over while the agent thinks: nothing is written, not even "done"
    await store.set_owner(conversation_id, "assigned")
    await store.begin_update(2, (42, 0), LEASE)
    assert await store.finish_exchange(2, conversation_id, {"x": 1}, question, answer) is None
    assert len(await store.recent_turns(conversation_id)) == 2
    assert (await store.load_conversation(user_id)).version == 1
    assert await count_rows(store.db, "processed_updates", "status = 'done'") == 1


async def test_the_answer_is_in_the_outbox_in_its_own_transaction_leased_to_its_sender(
    store: Store, clock: FakeClock
) -> None:
    """The messages that carry an answer are written with it, before the first attempt to
    send them: leased to the process that answers (no outbox job takes them while it
    sends), and due for any process's outbox job once the lease has passed (it died)."""
    _, conversation_id = await new_graduate(store, 42)
    question = NewTurn("graduate", "试用期多长？", lang="zh")
    answer = NewTurn("bot", "不超过六个月。", lang="zh", intent="answer")
    await store.begin_update(1, (42, 0), LEASE, payload={"update_id": 1})

    def sends(turn: int) -> list[Send]:
        return [
            Send(f"answer:{turn}:{i}", "sendMessage", {"chat_id": 42, "text": f"{turn}/{i}"})
            for i in range(2)
        ]

    exchange = await store.finish_exchange(
        1, conversation_id, {}, question, answer, chat=(42, 0), sends=sends, lease=LEASE
    )
    assert exchange is not None
    first, second = exchange.queued
    assert first.dedupe_key == f"answer:{exchange.turn}:0" and first.status == "pending"
    assert first.payload == {"chat_id": 42, "text": f"{exchange.turn}/0"}
    assert first.next_attempt_at == clock.now + LEASE and first.attempts == 0
    assert await count_rows(store.db, "outbox", "status = 'pending'") == 2
    # the update is done (and what it said forgotten) in the same transaction
    assert await count_rows(store.db, "processed_updates", "status = 'done'") == 1
    assert await count_rows(store.db, "processed_updates", "payload IS NULL") == 1
    assert await count_rows(store.db, "chat_leases") == 0

    assert await store.due(clock.now, 10) == [], "leased to the process sending it"
    assert await store.mark_sent(first.id)
    assert not await store.mark_sent(first.id)
    clock.advance(seconds=61)  # the sender died before the second part
    (late,) = await store.due(clock.now, 10)
    assert late.id == second.id

    # a counsellor took over: no answer, so nothing queued either
    await store.set_owner(conversation_id, "assigned")
    await store.begin_update(2, (42, 0), LEASE)
    withheld = await store.finish_exchange(
        2, conversation_id, {}, question, answer, sends=sends, lease=LEASE
    )
    assert withheld is None
    assert await count_rows(store.db, "outbox") == 2


async def test_a_handoff_exchange_leaves_its_update_and_chat_to_the_end(store: Store) -> None:
    _, conversation_id = await new_graduate(store, 42)
    question = NewTurn("graduate", "我要找人工", lang="zh")
    answer = NewTurn("bot", "好的，正在为你转接。", lang="zh", handoff=True)
    await store.begin_update(1, (42, 0), LEASE)
    exchange = await store.finish_exchange(1, conversation_id, {}, question, answer, finish=False)
    assert exchange is not None and exchange.queued == ()
    assert await count_rows(store.db, "processed_updates", "status = 'processing'") == 1
    assert await count_rows(store.db, "chat_leases") == 1
    await store.end_update(1, (42, 0))
    assert await count_rows(store.db, "processed_updates", "status = 'done'") == 1
    assert await count_rows(store.db, "chat_leases") == 0
