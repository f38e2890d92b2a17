"""Forgetting a user, redacted unanswered questions, usage figures and retention."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text

from bot.storage import Store
from bot.storage.models import Base
from tests.storage.conftest import START, FakeClock, count_rows, new_graduate

PHONE = "13812345678"
ID_NUMBER = "110101199003074518"


async def populate(store: Store, telegram_id: int) -> dict[str, int]:
    """One graduate with a row in every table that can belong to a user."""
    user_id, conversation_id = await new_graduate(store, telegram_id)
    turn = await store.add_turn(conversation_id, "graduate", "工资被拖欠")
    await store.add_turn(conversation_id, "bot", "请联系劳动监察", handoff=True)
    ticket, _ = await store.open_ticket(
        conversation_id, user_id, "rights", "high", "requested", "wages", None, [], []
    )
    await store.set_topic(ticket.id, -100, telegram_id, "topic")
    await store.record_link(ticket.id, "to_counsellors", telegram_id, 1, -100, 2)
    await store.enqueue(f"relay:{telegram_id}", "sendMessage", {"chat_id": telegram_id}, ticket.id)
    await store.enqueue(f"loose:{telegram_id}", "sendMessage", {"chat_id": telegram_id})
    await store.add_feedback(user_id, "thumb", 1, conversation_id=conversation_id, turn_id=turn)
    await store.set_rating(ticket.id, 5)
    await store.add_unanswered(user_id, "问题", "zh", 0.1, "low_confidence")
    await store.count_message(user_id, store.now())
    update_id = telegram_id * 1000
    await store.claim_update(update_id, store.now(), dt.timedelta(minutes=5), chat_id=telegram_id)
    await store.finish_update(update_id)
    return {"user": user_id, "conversation": conversation_id, "ticket": ticket.id}


async def test_forget_user_removes_every_row_of_theirs_only(store: Store) -> None:
    mine = await populate(store, 111)
    other = await populate(store, 222)
    before = {
        table.name: await count_rows(store.db, table.name)
        for table in Base.metadata.tables.values()
    }

    counts = await store.forget_user(mine["user"])

    assert counts["users"] == 1
    assert counts["conversations"] == 1
    assert counts["turns"] == 2
    assert counts["tickets"] == 1
    assert counts["ticket_events"] == 3  # created, topic_created, rated
    assert counts["message_links"] == 1
    assert counts["outbox"] == 2  # the ticket's and the loose one addressed to them
    assert counts["feedback"] == 2  # thumb and rating
    assert counts["unanswered"] == 1
    assert counts["rate_buckets"] == 1
    assert counts["processed_updates"] == 1  # which updates came from their chat

    references: dict[str, tuple[str, dict[str, Any]]] = {
        "users": ("id = :user", {"user": mine["user"]}),
        "conversations": ("user_id = :user", {"user": mine["user"]}),
        "turns": ("conversation_id = :c", {"c": mine["conversation"]}),
        "tickets": (
            "user_id = :user OR conversation_id = :c",
            {"user": mine["user"], "c": mine["conversation"]},
        ),
        "ticket_events": ("ticket_id = :t", {"t": mine["ticket"]}),
        "message_links": ("ticket_id = :t OR source_chat_id = 111", {"t": mine["ticket"]}),
        "outbox": (
            "ticket_id = :t OR dedupe_key = :loose",
            {"t": mine["ticket"], "loose": "loose:111"},
        ),
        "feedback": (
            "user_id = :user OR ticket_id = :t OR conversation_id = :c",
            {"user": mine["user"], "t": mine["ticket"], "c": mine["conversation"]},
        ),
        "unanswered": ("user_id = :user", {"user": mine["user"]}),
        "rate_buckets": ("user_id = :user", {"user": mine["user"]}),
        "processed_updates": ("chat_id = 111", {}),
    }
    for table, (where, params) in references.items():
        assert await count_rows(store.db, table, where, **params) == 0, table

    after = {
        table.name: await count_rows(store.db, table.name)
        for table in Base.metadata.tables.values()
    }
    for table, number in before.items():
        assert after[table] == number - counts.get(table, 0), table
    # the other graduate is untouched
    assert await store.get_user(other["user"]) is not None
    assert await count_rows(store.db, "turns", "conversation_id = :c", c=other["conversation"]) == 2
    assert len(await store.events(other["ticket"])) == 3
    assert await store.forget_user(mine["user"]) == {table: 0 for table in counts}


async def test_unanswered_questions_are_stored_redacted(store: Store, clock: FakeClock) -> None:
    user_id, _ = await new_graduate(store, 1)
    question = f"我的手机号是{PHONE}，身份证{ID_NUMBER}，邮箱 li@example.com，档案在哪里？"
    await store.add_unanswered(user_id, question, "zh", 0.12, "no_answer")
    async with store.db.engine.connect() as connection:
        stored = (await connection.execute(text("SELECT question FROM unanswered"))).scalar_one()
    assert PHONE not in stored
    assert ID_NUMBER not in stored
    assert "li@example.com" not in stored
    assert "档案在哪里" in stored
    listed = await store.list_unanswered(clock.now - dt.timedelta(days=1))
    assert [(q.question, q.reason, q.confidence) for q in listed] == [(stored, "no_answer", 0.12)]
    assert await store.list_unanswered(clock.now + dt.timedelta(seconds=1)) == []


async def test_stats_on_a_small_dataset(store: Store, clock: FakeClock) -> None:
    user_id, conversation_id = await new_graduate(store, 1)
    await store.add_turn(conversation_id, "graduate", "before the window")
    clock.advance(days=1)
    since = clock.now

    for answer_handoff in (False, False, True):
        await store.add_turn(conversation_id, "graduate", "question")
        await store.add_turn(conversation_id, "bot", "answer", handoff=answer_handoff)
    await store.add_unanswered(user_id, "?", "zh", 0.1, "low_confidence")

    # three tickets: first responses after 60 s and 300 s, one never answered
    waits = [60, 300, None]
    for n, wait in enumerate(waits):
        other_user, other_conversation = await new_graduate(store, 100 + n)
        ticket, _ = await store.open_ticket(
            other_conversation, other_user, "policy", "normal", "requested", "s", None
        )
        if wait is not None:
            clock.advance(seconds=wait)
            await store.mark_first_response(ticket.id)
            await store.set_rating(ticket.id, 5 - n * 2)  # 5 and 3
    await store.add_feedback(user_id, "thumb", 1)
    await store.add_feedback(user_id, "thumb", 1)
    await store.add_feedback(user_id, "thumb", -1)

    stats = await store.stats(since)
    assert stats.since == since
    assert stats.questions == 3
    assert stats.answered == 2
    assert stats.handed_off == 3
    assert (stats.thumbs_up, stats.thumbs_down) == (2, 1)
    assert stats.ratings == 2
    assert stats.rating_mean == 4.0
    assert stats.median_first_response_s == 180.0
    assert stats.unanswered == 1

    everything = await store.stats(START - dt.timedelta(days=1))
    assert everything.questions == 4
    empty = await store.stats(since, until=since)
    assert (empty.questions, empty.ratings, empty.rating_mean) == (0, 0, None)
    assert empty.median_first_response_s is None


async def test_retention_removes_old_turns_and_closed_transcripts_only(
    store: Store, clock: FakeClock
) -> None:
    user_id, conversation_id = await new_graduate(store, 1)
    await store.add_turn(conversation_id, "graduate", "old question")
    transcript = [{"role": "graduate", "text": "old question", "at": "2026-11-26T09:00:00Z"}]
    closed, _ = await store.open_ticket(
        conversation_id, user_id, "policy", "normal", "requested", "s", None, [], transcript
    )
    await store.resolve(closed.id, "counsellor:1")
    other_user, other_conversation = await new_graduate(store, 2)
    still_open, _ = await store.open_ticket(
        other_conversation, other_user, "policy", "normal", "requested", "s", None, [], transcript
    )
    conversation = await store.load_conversation(other_user)
    dialogue = {"turns": [{"role": "user", "text": "我的老板拖欠工资"}]}
    assert await store.save_state(conversation.id, dialogue, conversation.version)
    await store.add_unanswered(user_id, "old unanswered", "en", 0.1, "no_answer")
    clock.advance(days=40)
    await store.add_turn(conversation_id, "graduate", "new question")
    recent = await store.load_conversation(user_id)
    assert await store.save_state(recent.id, dialogue, recent.version)

    removed = await store.delete_transcripts_older_than(clock.now - dt.timedelta(days=30))

    # the other graduate's conversation is queued (their ticket is open): its state stays
    assert removed == {"turns": 1, "transcripts": 1, "conversations": 0, "unanswered": 1}
    assert [t.text for t in await store.recent_turns(conversation_id)] == ["new question"]
    assert (await store.load_conversation(user_id)).state == dialogue, "recent dialogue stays"
    emptied = await store.get_ticket(closed.id)
    kept = await store.get_ticket(still_open.id)
    assert emptied is not None and emptied.transcript == []
    assert emptied.summary == "s"  # the ticket itself stays for the records
    assert kept is not None and kept.transcript == transcript
    again = await store.delete_transcripts_older_than(clock.now - dt.timedelta(days=30))
    assert sum(again.values()) == 0

    assert await store.cancel(still_open.id, "graduate")
    clock.advance(days=31)  # the conversation's last activity was the cancel
    removed = await store.delete_transcripts_older_than(clock.now - dt.timedelta(days=30))
    assert removed["conversations"] == 2, "idle bot-owned dialogues are emptied"
    assert (await store.load_conversation(other_user)).state == {}
    assert (await store.load_conversation(user_id)).state == {}
