"""The hot path: every message runs the statements below. They are plain SQLAlchemy Core on
a ``Connection`` so that ``Database.run`` can run a whole step of a message as one
transaction in one hand-off (SQLite), and the async methods share them (``run_sync``).

Their SQL is what ``bench/telegram_load.py`` and ``bench/scale.py`` measure: the
``Store``'s mixins (``users``, ``conversations``, ``outbox``, ``rate_limits``, ``updates``)
run these, they do not rebuild them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import fields
from functools import cache
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, delete, func, insert, null, or_, select, update
from sqlalchemy.engine import Connection

from bot.storage.models import (
    ChatLeaseRow,
    ConversationRow,
    OutboxRow,
    ProcessedUpdateRow,
    RateBucketRow,
    TurnRow,
    UserRow,
)
from bot.storage.records import ConversationRecord, NewTurn, OutboxItem, Send, User
from bot.storage.sql import json, record, redacted, upsert

LAST_SEEN_RESOLUTION = dt.timedelta(minutes=5)
"""``last_seen_at`` is refreshed at most this often (one write saved on most messages)."""

_USERS: Table = cast(Table, UserRow.__table__)
_CONVERSATIONS: Table = cast(Table, ConversationRow.__table__)
_TURNS: Table = cast(Table, TurnRow.__table__)
_UPDATES: Table = cast(Table, ProcessedUpdateRow.__table__)
_OUTBOX: Table = cast(Table, OutboxRow.__table__)


@cache
def _claim_new_update(dialect: str) -> Any:
    """Claim an update never seen before (RETURNING a row only then). Parameters:
    ``b_update_id``, ``b_now``, ``b_chat_id``, ``b_payload``. (The hot path's statements are
    built once per dialect, with parameters: SQLAlchemy then compiles each once, not once a
    message.)"""
    return (
        upsert(dialect, ProcessedUpdateRow)
        .values(
            update_id=bindparam("b_update_id"),
            status="processing",
            claimed_at=bindparam("b_now"),
            chat_id=bindparam("b_chat_id"),
            payload=bindparam("b_payload", type_=_UPDATES.c.payload.type),
        )
        .on_conflict_do_nothing(index_elements=[ProcessedUpdateRow.update_id])
        .returning(ProcessedUpdateRow.update_id)
    )


_FINISH_UPDATE = (
    update(ProcessedUpdateRow)
    .where(ProcessedUpdateRow.update_id == bindparam("b_update_id"))
    .values(status="done", done_at=bindparam("b_now"), payload=null())
)
"""Parameters: ``b_update_id``, ``b_now``. (What the update said is not kept once it is
done.)"""


@cache
def _lease_chat(dialect: str) -> Any:
    """Take a chat for an update. Parameters: ``b_chat_id``, ``b_thread_id``,
    ``b_update_id``, ``b_now``, ``b_expires`` (see ``_lease``)."""
    statement = upsert(dialect, ChatLeaseRow).values(
        chat_id=bindparam("b_chat_id"),
        thread_id=bindparam("b_thread_id"),
        update_id=bindparam("b_update_id"),
        expires_at=bindparam("b_expires"),
    )
    return statement.on_conflict_do_update(
        index_elements=[ChatLeaseRow.chat_id, ChatLeaseRow.thread_id],
        set_={"update_id": bindparam("b_update_id"), "expires_at": bindparam("b_expires")},
        where=or_(
            ChatLeaseRow.expires_at <= bindparam("b_now"),
            ChatLeaseRow.update_id == bindparam("b_update_id"),
        ),
    ).returning(ChatLeaseRow.update_id)


def _lease(
    chat: tuple[int, int], update_id: int, now: dt.datetime, lease: dt.timedelta
) -> dict[str, Any]:
    return {
        "b_chat_id": chat[0],
        "b_thread_id": chat[1],
        "b_update_id": update_id,
        "b_now": now,
        "b_expires": now + lease,
    }


_RELEASE_CHAT = delete(ChatLeaseRow).where(
    ChatLeaseRow.chat_id == bindparam("b_chat_id"),
    ChatLeaseRow.thread_id == bindparam("b_thread_id"),
    ChatLeaseRow.update_id == bindparam("b_update_id"),
)
"""Parameters: ``b_chat_id``, ``b_thread_id``, ``b_update_id`` (see ``_release``)."""


def _release(chat: tuple[int, int], update_id: int) -> dict[str, Any]:
    return {"b_chat_id": chat[0], "b_thread_id": chat[1], "b_update_id": update_id}


_GRADUATE = (
    select(_USERS, *(c.label(f"c_{c.name}") for c in _CONVERSATIONS.columns))
    .outerjoin(_CONVERSATIONS, _CONVERSATIONS.c.user_id == _USERS.c.id)
    .where(_USERS.c.telegram_id == bindparam("b_telegram_id"))
)
"""A user with their conversation's columns (``c_*``; None when they have none).
Parameter: ``b_telegram_id``."""


@cache
def _touch_graduate(dialect: str) -> Any:
    """Create the user or refresh ``last_seen_at`` (and the name, when given), as
    ``get_or_create_user`` does. Parameters: ``b_telegram_id``, ``b_name``, ``b_now``."""
    name = bindparam("b_name", type_=String)
    statement = upsert(dialect, UserRow).values(
        telegram_id=bindparam("b_telegram_id"),
        display_name=name,
        role="graduate",
        created_at=bindparam("b_now"),
        last_seen_at=bindparam("b_now"),
    )
    return statement.on_conflict_do_update(
        index_elements=[UserRow.telegram_id],
        set_={
            "last_seen_at": bindparam("b_now"),
            "display_name": func.coalesce(name, UserRow.display_name),
        },
    ).returning(*_USERS.columns)


_USER = select(_USERS).where(_USERS.c.telegram_id == bindparam("b_telegram_id"))
"""Parameter: ``b_telegram_id``."""


def _user(connection: Connection, telegram_id: int, name: str | None, now: dt.datetime) -> User:
    """``Store.get_or_create_user`` on a connection: a read, and a write only when the
    user is new, renamed or not seen lately."""
    row = connection.execute(_USER, {"b_telegram_id": telegram_id}).one_or_none()
    if row is None or not _is_fresh(row, name, now):
        touched = {"b_telegram_id": telegram_id, "b_name": name, "b_now": now}
        row = connection.execute(_touch_graduate(connection.dialect.name), touched).one()
    return record(User, row)


def _is_fresh(user: Any, name: str | None, now: dt.datetime) -> bool:
    """Nothing to write for this user row: the same name, seen lately."""
    return name in (None, user.display_name) and now - user.last_seen_at < LAST_SEEN_RESOLUTION


@cache
def _open_conversation(dialect: str) -> Any:
    """The user's conversation, created if missing (as ``load_conversation``).
    Parameters: ``b_user_id``, ``b_now``."""
    return (
        upsert(dialect, ConversationRow)
        .values(
            user_id=bindparam("b_user_id"),
            state={},
            owner="bot",
            version=0,
            updated_at=bindparam("b_now"),
        )
        .on_conflict_do_nothing(index_elements=[ConversationRow.user_id])
    )


def _graduate(
    connection: Connection, telegram_id: int, name: str | None, now: dt.datetime
) -> tuple[User, ConversationRecord]:
    """``load_graduate`` on a connection: one read for most messages; for a new,
    renamed or long-unseen graduate, the writes that brings, then the read again."""
    row = connection.execute(_GRADUATE, {"b_telegram_id": telegram_id}).one_or_none()
    known = _known_graduate(row, name, now)
    if known is not None:
        return known
    user = _user(connection, telegram_id, name, now)
    connection.execute(
        _open_conversation(connection.dialect.name), {"b_user_id": user.id, "b_now": now}
    )
    row = connection.execute(_GRADUATE, {"b_telegram_id": telegram_id}).one()
    return _as_graduate(row)


def _known_graduate(
    row: Any, display_name: str | None, now: dt.datetime
) -> tuple[User, ConversationRecord] | None:
    """The user and conversation in ``row`` when nothing needs writing: they have a
    conversation, the same name, and were seen lately (else: None)."""
    if row is None or row.c_id is None or not _is_fresh(row, display_name, now):
        return None
    return _as_graduate(row)


def _as_graduate(row: Any) -> tuple[User, ConversationRecord]:
    conversation = ConversationRecord(
        **{f.name: getattr(row, f"c_{f.name}") for f in fields(ConversationRecord)}
    )
    return record(User, row), conversation


def _count_message(connection: Connection, user_id: int, now: dt.datetime) -> float:
    """``Store.count_message`` on a connection."""
    minute, seconds = divmod(int(now.timestamp()), 60)
    statement = upsert(connection.dialect.name, RateBucketRow).values(
        user_id=user_id, minute=minute, hits=1
    )
    statement = statement.on_conflict_do_update(
        index_elements=[RateBucketRow.user_id, RateBucketRow.minute],
        set_={"hits": RateBucketRow.hits + 1},
    ).returning(RateBucketRow.hits)
    previous = select(RateBucketRow.hits).where(
        RateBucketRow.user_id == user_id, RateBucketRow.minute == minute - 1
    )
    hits: int = connection.execute(statement).scalar_one()
    before: int = connection.execute(previous).scalar_one_or_none() or 0
    return hits + before * (60 - seconds) / 60


_TAKE_FOR_BOT = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("b_conversation_id"), _CONVERSATIONS.c.owner == "bot")
    .values(
        state=bindparam("b_state"),
        version=_CONVERSATIONS.c.version + 1,
        updated_at=bindparam("b_now"),
    )
    .returning(_CONVERSATIONS.c.id)
)
_ADD_TURNS = insert(_TURNS).returning(_TURNS.c.id, _TURNS.c.role)


def _record_answer(
    connection: Connection,
    conversation_id: int,
    state: dict[str, Any],
    question: NewTurn,
    answer: NewTurn,
    now: dt.datetime,
) -> int | None:
    """The bot's answer to a question, if the bot still owns the conversation: saves
    the agent's ``state`` (bumping the version) and both turns, and returns the answer's
    turn id. None, with nothing written, when a counsellor owns it now (or the
    conversation is gone)."""
    saved = redacted(json(state))
    took = connection.execute(
        _TAKE_FOR_BOT, {"b_conversation_id": conversation_id, "b_state": saved, "b_now": now}
    )
    if took.scalar_one_or_none() is None:
        return None
    rows = [question.values(conversation_id, now), answer.values(conversation_id, now)]
    added = connection.execute(_ADD_TURNS, rows).all()  # one INSERT … VALUES (…), (…)
    return next(int(turn.id) for turn in added if turn.role == answer.role)


@cache
def _insert_sends(dialect: str) -> Any:
    """New outbox rows (several: one INSERT … VALUES (…), (…)); a key already queued is
    skipped, not an error (RETURNING only the rows written)."""
    return (
        upsert(dialect, OutboxRow)
        .on_conflict_do_nothing(index_elements=[OutboxRow.dedupe_key])
        .returning(OutboxRow.id, OutboxRow.dedupe_key)
    )


def _queue(
    connection: Connection, sends: Sequence[Send], now: dt.datetime, until: dt.datetime
) -> list[OutboxItem]:
    """``Store.queue`` on a connection."""
    if not sends:
        return []
    rows = [
        {
            "dedupe_key": send.key,
            "ticket_id": send.ticket_id,
            "method": send.method,
            "payload": json(send.payload),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": until,
            "created_at": now,
        }
        for send in sends
    ]
    inserted = connection.execute(_insert_sends(connection.dialect.name), rows)
    written = {key: int(row_id) for row_id, key in inserted}
    return [
        OutboxItem(
            id=written[send.key],
            dedupe_key=send.key,
            ticket_id=send.ticket_id,
            method=send.method,
            payload=row["payload"],
            status="pending",
            attempts=0,
            next_attempt_at=until,
            last_error=None,
            created_at=now,
            sent_at=None,
        )
        for send, row in zip(sends, rows, strict=True)
        if send.key in written
    ]


_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("b_id"), _OUTBOX.c.status == "pending")
    .values(status="sent", sent_at=bindparam("b_now"))
)
"""Parameters: ``b_id``, ``b_now``."""
