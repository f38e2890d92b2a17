"""``Store``: every read and write the Telegram channel makes, as small typed methods.

Each method is one short transaction of its own, or joins the caller's when given
``session=`` (from ``Store.transaction()``). Race-sensitive steps are a single
conditional UPDATE (``... WHERE status = 'queued'``, the winner sees its row come back)
or an INSERT guarded by a unique constraint, so they stay correct across processes on
SQLite and PostgreSQL without in-process locks. Methods return frozen records, never
live ORM objects. Timestamps are timezone-aware UTC; ``clock`` decides "now".
"""

from __future__ import annotations

import datetime as dt
import enum
import statistics
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from functools import cache
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import Delete, Update

from bot.handoff import models as handoff
from bot.handoff.models import OPEN_STATUSES, PRIORITIES, Category, Owner, Priority, TicketStatus
from bot.kb.models import Lang
from bot.privacy import redact
from bot.storage.db import Database
from bot.storage.models import (
    PROCESSING,
    Base,
    ChatLeaseRow,
    ConversationRow,
    FeedbackRow,
    KbUploadRow,
    MessageLinkRow,
    OutboxRow,
    ProcessedUpdateRow,
    RateBucketRow,
    TicketAttachmentRow,
    TicketEventRow,
    TicketRow,
    TurnRow,
    UnansweredRow,
    UserRow,
)

Role = Literal["graduate", "counsellor", "admin"]
TurnRole = Literal["graduate", "bot", "counsellor", "system"]
Direction = Literal["to_counsellors", "to_graduate"]
FeedbackKind = Literal["thumb", "rating"]
UnansweredReason = Literal["low_confidence", "no_answer", "handoff"]
UploadStatus = Literal["pending", "done", "failed"]
Clock = Callable[[], dt.datetime]

MAX_QUESTION_CHARS = 2000
LAST_SEEN_RESOLUTION = dt.timedelta(minutes=5)
"""``last_seen_at`` is refreshed at most this often (one write saved on most messages)."""
MAX_ERROR_CHARS = 2000
HANDED_TO_OUTBOX = 0
"""A relay link's target message id while the outbox holds the copy (written with the
link, before the first attempt to send it; replaced by the copy's id once the relaying
process has sent it): the link is final, the message is not relayed again."""
SEND_LEASE = dt.timedelta(seconds=60)
"""How long a process that queued a message in the outbox has to send it before the outbox
job of any process may (``Store.queue``; the default of ``GRADGUIDE_CHAT_LEASE_S``)."""


def utcnow() -> dt.datetime:
    """The default clock: the current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


# --- records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    id: int
    telegram_id: int | None
    display_name: str | None
    lang: str | None
    region: str | None
    consent_at: dt.datetime | None
    role: str
    created_at: dt.datetime
    last_seen_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    id: int
    user_id: int
    state: dict[str, Any]
    """The agent's serialised ``Conversation`` (``{}`` for a new one)."""
    owner: str
    """Who answers the graduate: 'bot', 'queued' (waiting for a counsellor) or 'assigned'."""
    version: int
    """Bumped by every ``save_state``; pass it back as ``expected_version``."""
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NewTurn:
    """A message about to be added to a transcript (``Store.add_turn``, ``finish_exchange``).

    Its text is stored redacted (ID, phone, e-mail and bank card numbers: ``redact``), as the
    privacy notice says; the counsellors see the graduate's message whole in their Telegram
    group, where the relay copies it (so they can call back), and a graduate's /contact
    details are kept as given on the ticket."""

    role: TurnRole
    text: str
    lang: str | None = None
    intent: str | None = None
    confidence: float | None = None
    handoff: bool = False
    citations: tuple[Any, ...] = ()
    telegram_message_id: int | None = None

    def values(self, conversation_id: int, now: dt.datetime) -> dict[str, Any]:
        return {
            "conversation_id": conversation_id,
            "role": self.role,
            "text": redact(self.text),
            "lang": self.lang,
            "intent": self.intent,
            "confidence": self.confidence,
            "handoff": self.handoff,
            "citations": _json(list(self.citations)),
            "telegram_message_id": self.telegram_message_id,
            "created_at": now,
        }


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A question the bot could not answer well (``Store.add_unanswered``)."""

    user_id: int | None
    question: str
    lang: str | None
    confidence: float | None
    reason: UnansweredReason

    def statement(self, now: dt.datetime) -> Any:
        """Its INSERT, the text redacted (ID, phone, e-mail and bank numbers)."""
        return (
            insert(UnansweredRow)
            .values(
                user_id=self.user_id,
                question=redact(self.question)[:MAX_QUESTION_CHARS],
                lang=self.lang,
                confidence=self.confidence,
                reason=self.reason,
                created_at=now,
            )
            .returning(UnansweredRow.id)
        )


@dataclass(frozen=True, slots=True)
class TurnRecord:
    id: int
    conversation_id: int
    role: str
    text: str
    lang: str | None
    intent: str | None
    confidence: float | None
    handoff: bool
    citations: list[Any]
    telegram_message_id: int | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    conversation_id: int
    user_id: int
    status: str
    open_conversation_id: int | None
    category: str
    priority: str
    reason: str
    summary: str
    draft_answer: str | None
    citations: list[Any]
    transcript: list[Any]
    assignee_telegram_id: int | None
    topic_chat_id: int | None
    topic_id: int | None
    topic_name: str | None
    card_message_id: int | None
    created_at: dt.datetime
    claimed_at: dt.datetime | None
    first_response_at: dt.datetime | None
    resolved_at: dt.datetime | None
    """When the ticket was closed, resolved or cancelled."""
    rating: int | None
    sla_reminded_at: dt.datetime | None
    long_wait_notified_at: dt.datetime | None
    giveup_offered_at: dt.datetime | None
    contact: str | None
    signals: list[Any] | None = None
    """The message check's classes for the message that opened it (``TicketRow.signals``)."""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Escalated(enum.Enum):
    """What ``Store.escalate_ticket`` did."""

    ESCALATED = "escalated"
    """The ticket is now a crisis, urgent (it was not)."""
    ALREADY = "already"
    """It was a crisis and urgent already; the new signal is on the audit trail."""
    CLOSED = "closed"
    """No open ticket by that id: nothing changed."""


@dataclass(frozen=True, slots=True)
class TicketEvent:
    id: int
    ticket_id: int
    kind: str
    actor: str
    data: dict[str, Any]
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class MessageLink:
    id: int
    ticket_id: int
    direction: str
    source_chat_id: int
    source_message_id: int
    target_chat_id: int
    target_message_id: int | None
    """None while the relay is claimed but not yet sent (``claim_link``)."""
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Send:
    """A Bot API call to make durable before it is first attempted: an outbox row, leased
    to the process that writes it (``Store.queue``, ``finish_exchange``)."""

    key: str
    """The outbox's ``dedupe_key``: the same call is never queued twice."""
    method: str
    payload: dict[str, Any]
    ticket_id: int | None = None


@dataclass(frozen=True, slots=True)
class Exchange:
    """What ``Store.finish_exchange`` wrote: the answer's turn and its outbox items."""

    turn: int
    queued: tuple[OutboxItem, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A Bot API call in the outbox. While ``status`` is 'pending', ``next_attempt_at`` in
    the future is a lease: the process that queued (or ``due`` handed) it is sending it;
    once it passes, any process's outbox job may."""

    id: int
    dedupe_key: str
    ticket_id: int | None
    method: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class UnansweredQuestion:
    id: int
    user_id: int | None
    question: str
    lang: str | None
    confidence: float | None
    reason: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Upload:
    id: int
    admin_telegram_id: int
    file_name: str
    telegram_file_id: str
    status: str
    report: dict[str, Any] | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Stats:
    """Usage figures since a moment (``Store.stats``)."""

    since: dt.datetime
    questions: int
    """Messages from graduates (graduate turns)."""
    answered: int
    """Bot replies that did not hand off."""
    handed_off: int
    """Tickets created."""
    thumbs_up: int
    thumbs_down: int
    ratings: int
    rating_mean: float | None
    median_first_response_s: float | None
    """Median seconds from ticket creation to the first counsellor message."""
    unanswered: int


_R = TypeVar("_R")
_T = TypeVar("_T")


def _record(cls: type[_R], row: object) -> _R:
    names = [field.name for field in fields(cast(Any, cls))]
    return cls(**{name: getattr(row, name) for name in names})


def _records(cls: type[_R], rows: Iterable[object]) -> list[_R]:
    return [_record(cls, row) for row in rows]


def _json(value: Any) -> Any:
    """``value`` with datetimes, dates and pydantic models made JSON-serialisable."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(key): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _redacted(value: Any) -> Any:
    """JSON ``value`` with every string redacted: the agent's dialogue state keeps what the
    graduate wrote (its turns, the questions it searched for), stored as the turns are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


def _upsert(dialect: str, table: type[Base]) -> Any:
    """``INSERT … ON CONFLICT`` for the database in use (both dialects spell it alike)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _priority_rank() -> ColumnElement[int]:
    """0 for urgent, 1 for high, 2 for normal: the queue's first sort key."""
    ranks = {priority: rank for rank, priority in enumerate(PRIORITIES)}
    return case(ranks, value=TicketRow.priority, else_=len(PRIORITIES))


_OUTAGES = (OperationalError, InterfaceError, PoolTimeoutError, OSError)
"""What a database outage raises; the store turns it into ``StorageError``."""

_SYNC: Mapping[str, Any] = MappingProxyType({"synchronize_session": False})
"""Bulk UPDATE/DELETE: the sessions are short-lived, nothing in them needs refreshing."""


# --- the hot path -------------------------------------------------------------------
# Every message runs the statements below. They are plain SQLAlchemy Core on a
# ``Connection`` so that ``Database.run`` can run a whole step of a message as one
# transaction in one hand-off (SQLite), and the async methods share them (``run_sync``).

_USERS: Table = cast(Table, UserRow.__table__)
_CONVERSATIONS: Table = cast(Table, ConversationRow.__table__)
_TURNS: Table = cast(Table, TurnRow.__table__)
_UPDATES: Table = cast(Table, ProcessedUpdateRow.__table__)
_OUTBOX: Table = cast(Table, OutboxRow.__table__)


@dataclass(frozen=True, slots=True)
class Begun:
    """What ``Store.begin_update`` did: the update is claimed; ``ours`` if its chat was
    free; a graduate's user and conversation when they were read on the way."""

    ours: bool
    graduate: tuple[User, ConversationRecord] | None = None
    sent_last_minute: float = 0.0


@cache
def _claim_new_update(dialect: str) -> Any:
    """Claim an update never seen before (RETURNING a row only then). Parameters:
    ``b_update_id``, ``b_now``, ``b_chat_id``, ``b_payload``. (The hot path's statements are
    built once per dialect, with parameters: SQLAlchemy then compiles each once, not once a
    message.)"""
    return (
        _upsert(dialect, ProcessedUpdateRow)
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
    statement = _upsert(dialect, ChatLeaseRow).values(
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
    statement = _upsert(dialect, UserRow).values(
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
    return _record(User, row)


def _is_fresh(user: Any, name: str | None, now: dt.datetime) -> bool:
    """Nothing to write for this user row: the same name, seen lately."""
    return name in (None, user.display_name) and now - user.last_seen_at < LAST_SEEN_RESOLUTION


@cache
def _open_conversation(dialect: str) -> Any:
    """The user's conversation, created if missing (as ``load_conversation``).
    Parameters: ``b_user_id``, ``b_now``."""
    return (
        _upsert(dialect, ConversationRow)
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
    return _record(User, row), conversation


def _count_message(connection: Connection, user_id: int, now: dt.datetime) -> float:
    """``Store.count_message`` on a connection."""
    minute, seconds = divmod(int(now.timestamp()), 60)
    upsert = _upsert(connection.dialect.name, RateBucketRow).values(
        user_id=user_id, minute=minute, hits=1
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=[RateBucketRow.user_id, RateBucketRow.minute],
        set_={"hits": RateBucketRow.hits + 1},
    ).returning(RateBucketRow.hits)
    previous = select(RateBucketRow.hits).where(
        RateBucketRow.user_id == user_id, RateBucketRow.minute == minute - 1
    )
    hits: int = connection.execute(upsert).scalar_one()
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
    saved = _redacted(_json(state))
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
        _upsert(dialect, OutboxRow)
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
            "payload": _json(send.payload),
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


class _Withheld(Exception):
    """Rolls back ``Store.finish_exchange`` when the bot no longer owns the conversation."""


class Store:
    """The async repository over a ``Database`` (see the module docstring)."""

    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self.db = db
        self._clock = clock

    def now(self) -> dt.datetime:
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the store's clock must return timezone-aware datetimes")
        return value

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction for several calls: pass the session as ``session=``.

        Commits when the block ends, rolls back if it raises. Database outages surface
        as ``StorageError``.
        """
        try:
            async with self.db.turn(), self.db.sessions() as session, session.begin():
                yield session
        except _OUTAGES as exc:
            raise self.db.unavailable(exc) from exc

    @asynccontextmanager
    async def _tx(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        if session is not None:
            yield session
            return
        async with self.transaction() as own:
            yield own

    async def _dml(self, s: AsyncSession, statement: Update | Delete) -> Result[Any]:
        return await s.execute(statement, execution_options=_SYNC)

    # --- users -----------------------------------------------------------------------

    async def get_or_create_user(
        self,
        telegram_id: int,
        display_name: str | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> User:
        """The user with this Telegram id, created on first contact; refreshes
        ``last_seen_at`` (and ``display_name`` when given). Safe under concurrency."""
        now = self.now()
        async with self._tx(session) as s:
            connection = await s.connection()
            return await connection.run_sync(_user, telegram_id, display_name, now)

    async def load_graduate(
        self,
        telegram_id: int,
        display_name: str | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> tuple[User, ConversationRecord]:
        """The user and their conversation, as ``get_or_create_user`` then
        ``load_conversation`` give them — in one read for most messages (a known user,
        seen lately, with a conversation)."""
        now = self.now()
        async with self._tx(session) as s:
            connection = await s.connection()
            return await connection.run_sync(_graduate, telegram_id, display_name, now)

    async def get_user(
        self,
        user_id: int | None = None,
        *,
        telegram_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> User | None:
        """A user by id or by Telegram id (exactly one of them)."""
        if (user_id is None) == (telegram_id is None):
            raise ValueError("pass exactly one of user_id and telegram_id")
        condition = (
            UserRow.id == user_id if user_id is not None else UserRow.telegram_id == telegram_id
        )
        async with self._tx(session) as s:
            row = (await s.execute(select(UserRow).where(condition))).scalar_one_or_none()
            return None if row is None else _record(User, row)

    async def _set_user(self, user_id: int, session: AsyncSession | None, **values: Any) -> bool:
        async with self._tx(session) as s:
            statement = update(UserRow).where(UserRow.id == user_id).values(**values)
            return _rowcount(await self._dml(s, statement)) == 1

    async def set_user_lang(
        self, user_id: int, lang: Lang | None, *, session: AsyncSession | None = None
    ) -> bool:
        return await self._set_user(user_id, session, lang=lang)

    async def set_user_region(
        self, user_id: int, region: str | None, *, session: AsyncSession | None = None
    ) -> bool:
        return await self._set_user(user_id, session, region=region)

    async def set_consent(
        self, user_id: int, given: bool = True, *, session: AsyncSession | None = None
    ) -> bool:
        """Record (or withdraw, ``given=False``) consent to store the conversation."""
        return await self._set_user(user_id, session, consent_at=self.now() if given else None)

    async def set_role(
        self, user_id: int, role: Role, *, session: AsyncSession | None = None
    ) -> bool:
        return await self._set_user(user_id, session, role=role)

    async def forget_user(
        self, user_id: int, *, session: AsyncSession | None = None
    ) -> dict[str, int]:
        """Delete the user and everything that belongs to them; rows deleted per table.

        Also removes outbox items without a ticket whose ``payload["chat_id"]`` is the
        user's Telegram id. Records that merely mention the user as a counsellor (other
        graduates' tickets and their audit trail) are kept.
        """
        conversations = select(ConversationRow.id).where(ConversationRow.user_id == user_id)
        tickets = select(TicketRow.id).where(
            or_(TicketRow.user_id == user_id, TicketRow.conversation_id.in_(conversations))
        )
        counts: dict[str, int] = {}
        async with self._tx(session) as s:
            telegram_id = (
                await s.execute(select(UserRow.telegram_id).where(UserRow.id == user_id))
            ).scalar_one_or_none()
            steps: list[tuple[str, Delete]] = [
                (
                    "ticket_events",
                    delete(TicketEventRow).where(TicketEventRow.ticket_id.in_(tickets)),
                ),
                (
                    "message_links",
                    delete(MessageLinkRow).where(MessageLinkRow.ticket_id.in_(tickets)),
                ),
                ("outbox", delete(OutboxRow).where(OutboxRow.ticket_id.in_(tickets))),
                (
                    "ticket_attachments",
                    delete(TicketAttachmentRow).where(
                        or_(
                            TicketAttachmentRow.ticket_id.in_(tickets),
                            TicketAttachmentRow.conversation_id.in_(conversations),
                        )
                    ),
                ),
                (
                    "feedback",
                    delete(FeedbackRow).where(
                        or_(
                            FeedbackRow.user_id == user_id,
                            FeedbackRow.ticket_id.in_(tickets),
                            FeedbackRow.conversation_id.in_(conversations),
                        )
                    ),
                ),
                ("unanswered", delete(UnansweredRow).where(UnansweredRow.user_id == user_id)),
                ("rate_buckets", delete(RateBucketRow).where(RateBucketRow.user_id == user_id)),
                ("turns", delete(TurnRow).where(TurnRow.conversation_id.in_(conversations))),
                (
                    "tickets",
                    delete(TicketRow).where(
                        or_(
                            TicketRow.user_id == user_id,
                            TicketRow.conversation_id.in_(conversations),
                        )
                    ),
                ),
                (
                    "conversations",
                    delete(ConversationRow).where(ConversationRow.user_id == user_id),
                ),
                ("users", delete(UserRow).where(UserRow.id == user_id)),
            ]
            for table, statement in steps:
                counts[table] = _rowcount(await self._dml(s, statement))
            counts["processed_updates"] = 0
            if telegram_id is not None:
                # which updates came from their chat (the one being processed stays, so
                # a replay of the /forget itself is still recognised)
                counts["processed_updates"] = _rowcount(
                    await self._dml(
                        s,
                        delete(ProcessedUpdateRow).where(
                            ProcessedUpdateRow.chat_id == telegram_id,
                            ProcessedUpdateRow.status == "done",
                        ),
                    )
                )
                await self._dml(  # what their updates still in process said
                    s,
                    update(ProcessedUpdateRow)
                    .where(ProcessedUpdateRow.chat_id == telegram_id)
                    .values(payload=null()),
                )
                loose = await s.execute(
                    select(OutboxRow.id, OutboxRow.payload).where(OutboxRow.ticket_id.is_(None))
                )
                ids = [
                    row_id
                    for row_id, payload in loose
                    if isinstance(payload, dict) and payload.get("chat_id") == telegram_id
                ]
                if ids:
                    statement = delete(OutboxRow).where(OutboxRow.id.in_(ids))
                    counts["outbox"] += _rowcount(await self._dml(s, statement))
        return counts

    # --- conversations ---------------------------------------------------------------

    async def load_conversation(
        self, user_id: int, *, session: AsyncSession | None = None
    ) -> ConversationRecord:
        """The user's conversation, created (empty state, owner 'bot') if missing.

        Raises ``LookupError`` if there is no such user.
        """
        query = select(ConversationRow).where(ConversationRow.user_id == user_id)
        async with self._tx(session) as s:
            row = (await s.execute(query)).scalar_one_or_none()
            if row is not None:
                return _record(ConversationRecord, row)
            try:
                async with s.begin_nested():
                    created = await s.execute(
                        insert(ConversationRow)
                        .values(
                            user_id=user_id, state={}, owner="bot", version=0, updated_at=self.now()
                        )
                        .returning(ConversationRow)
                    )
                    return _record(ConversationRecord, created.scalar_one())
            except IntegrityError as exc:
                row = (await s.execute(query)).scalar_one_or_none()
                if row is None:
                    raise LookupError(f"no user with id {user_id}") from exc
                return _record(ConversationRecord, row)

    async def get_conversation(
        self, conversation_id: int, *, session: AsyncSession | None = None
    ) -> ConversationRecord | None:
        async with self._tx(session) as s:
            row = await s.get(ConversationRow, conversation_id)
            return None if row is None else _record(ConversationRecord, row)

    async def save_state(
        self,
        conversation_id: int,
        state: dict[str, Any],
        expected_version: int,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Store the agent's state if nobody saved since ``expected_version`` was read.

        False means a concurrent save won: reload and retry. Bumps the version.
        """
        statement = (
            update(ConversationRow)
            .where(
                ConversationRow.id == conversation_id,
                ConversationRow.version == expected_version,
            )
            .values(
                state=_redacted(_json(state)),  # what the graduate wrote, as in the turns
                version=ConversationRow.version + 1,
                updated_at=self.now(),
            )
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    async def set_owner(
        self,
        conversation_id: int,
        owner: Owner,
        *,
        expected: Owner | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Change who answers the graduate; with ``expected``, only from that owner."""
        conditions = [ConversationRow.id == conversation_id]
        if expected is not None:
            conditions.append(ConversationRow.owner == expected)
        statement = (
            update(ConversationRow).where(*conditions).values(owner=owner, updated_at=self.now())
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    # --- turns -----------------------------------------------------------------------

    async def add_turn(
        self,
        conversation_id: int,
        role: TurnRole,
        text: str,
        *,
        lang: str | None = None,
        intent: str | None = None,
        confidence: float | None = None,
        handoff: bool = False,
        citations: Sequence[Any] = (),
        telegram_message_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> int:
        """Append a message to the transcript; returns the turn id."""
        turn = NewTurn(
            role,
            text,
            lang=lang,
            intent=intent,
            confidence=confidence,
            handoff=handoff,
            citations=tuple(citations),
            telegram_message_id=telegram_message_id,
        )
        statement = (
            insert(_TURNS).values(turn.values(conversation_id, self.now())).returning(TurnRow.id)
        )
        async with self._tx(session) as s:
            return (await s.execute(statement)).scalar_one()

    async def recent_turns(
        self, conversation_id: int, limit: int = 20, *, session: AsyncSession | None = None
    ) -> list[TurnRecord]:
        """The last ``limit`` turns, oldest first."""
        query = (
            select(TurnRow)
            .where(TurnRow.conversation_id == conversation_id)
            .order_by(TurnRow.created_at.desc(), TurnRow.id.desc())
            .limit(limit)
        )
        async with self._tx(session) as s:
            rows = (await s.execute(query)).scalars().all()
        return _records(TurnRecord, reversed(rows))

    # --- tickets ---------------------------------------------------------------------

    async def open_ticket(
        self,
        conversation_id: int,
        user_id: int,
        category: Category,
        priority: Priority,
        reason: str,
        summary: str,
        draft_answer: str | None = None,
        citations: Sequence[Any] = (),
        transcript: Sequence[Any] = (),
        *,
        signals: Sequence[str] = (),
        actor: str = "bot",
        session: AsyncSession | None = None,
    ) -> tuple[Ticket, bool]:
        """Queue a ticket for the conversation: ``(ticket, True)``; or, if one is already
        open, ``(that ticket, False)``. A new ticket sets the conversation owner to
        'queued' and records a 'created' event, in the same transaction."""
        now = self.now()
        statement = (
            insert(TicketRow)
            .values(
                conversation_id=conversation_id,
                user_id=user_id,
                status="queued",
                open_conversation_id=conversation_id,
                category=category,
                priority=priority,
                reason=reason,
                summary=summary,
                draft_answer=draft_answer,
                citations=_json(list(citations)),
                transcript=_json(list(transcript)),
                signals=list(signals) or None,
                created_at=now,
            )
            .returning(TicketRow)
        )
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    row = (await s.execute(statement)).scalar_one()
            except IntegrityError:
                existing = await self._open_ticket_row(s, conversation_id)
                if existing is None:  # not the one-open-ticket rule: a bad id or value
                    raise
                return _record(Ticket, existing), False
            await self._dml(
                s,
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id)
                .values(owner="queued", updated_at=now),
            )
            await self._event(
                s, row.id, "created", actor, {"category": category, "priority": priority}
            )
            return _record(Ticket, row), True

    async def _open_ticket_row(self, s: AsyncSession, conversation_id: int) -> TicketRow | None:
        query = select(TicketRow).where(TicketRow.open_conversation_id == conversation_id)
        return (await s.execute(query)).scalar_one_or_none()

    async def _one_ticket(
        self, session: AsyncSession | None, condition: ColumnElement[bool]
    ) -> Ticket | None:
        async with self._tx(session) as s:
            row = (await s.execute(select(TicketRow).where(condition))).scalar_one_or_none()
            return None if row is None else _record(Ticket, row)

    async def get_ticket(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> Ticket | None:
        return await self._one_ticket(session, TicketRow.id == ticket_id)

    async def open_ticket_for(
        self, conversation_id: int, *, session: AsyncSession | None = None
    ) -> Ticket | None:
        """The conversation's open (queued or assigned) ticket, if any."""
        return await self._one_ticket(session, TicketRow.open_conversation_id == conversation_id)

    async def ticket_by_topic(
        self, chat_id: int, topic_id: int, *, session: AsyncSession | None = None
    ) -> Ticket | None:
        """The ticket whose forum thread this is (open or closed)."""
        return await self._one_ticket(
            session, and_(TicketRow.topic_chat_id == chat_id, TicketRow.topic_id == topic_id)
        )

    async def list_tickets(
        self,
        status: Sequence[TicketStatus] | None = None,
        limit: int = 50,
        *,
        assignee_telegram_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> list[Ticket]:
        """Tickets, newest first, optionally only with these statuses / this assignee."""
        query = select(TicketRow).order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
        if status is not None:
            query = query.where(TicketRow.status.in_(list(status)))
        if assignee_telegram_id is not None:
            query = query.where(TicketRow.assignee_telegram_id == assignee_telegram_id)
        async with self._tx(session) as s:
            return _records(Ticket, (await s.execute(query.limit(limit))).scalars())

    async def set_topic(
        self,
        ticket_id: int,
        chat_id: int,
        topic_id: int,
        name: str | None = None,
        *,
        replace: bool = False,
        session: AsyncSession | None = None,
    ) -> bool:
        """Attach the ticket's forum thread. Only if it has none yet, unless ``replace``
        (the old topic was deleted and recreated). False as well if another ticket already
        uses that thread."""
        conditions = [TicketRow.id == ticket_id]
        if not replace:
            conditions.append(TicketRow.topic_id.is_(None))
        statement = (
            update(TicketRow)
            .where(*conditions)
            .values(topic_chat_id=chat_id, topic_id=topic_id, topic_name=name)
        )
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    changed = _rowcount(await self._dml(s, statement)) == 1
            except IntegrityError:
                return False
            if changed:
                data = {"chat_id": chat_id, "topic_id": topic_id, "name": name, "replaced": replace}
                await self._event(s, ticket_id, "topic_created", "bot", data)
            return changed

    async def set_card_message(
        self, ticket_id: int, message_id: int | None, *, session: AsyncSession | None = None
    ) -> bool:
        """Remember the ticket card's message (the one with the Claim/Resolve buttons)."""
        statement = (
            update(TicketRow).where(TicketRow.id == ticket_id).values(card_message_id=message_id)
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    async def claim(
        self,
        ticket_id: int,
        counsellor_telegram_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """queued → assigned to this counsellor. Of several concurrent claims exactly one
        returns True. Sets the conversation owner to 'assigned' and records 'claimed'."""
        now = self.now()
        statement = (
            update(TicketRow)
            .where(TicketRow.id == ticket_id, TicketRow.status == "queued")
            .values(status="assigned", assignee_telegram_id=counsellor_telegram_id, claimed_at=now)
            .returning(TicketRow.conversation_id)
        )
        async with self._tx(session) as s:
            conversation_id = (
                await s.execute(statement, execution_options=_SYNC)
            ).scalar_one_or_none()
            if conversation_id is None:
                return False
            await self._set_conversation_owner(s, conversation_id, "assigned", now)
            await self._event(
                s,
                ticket_id,
                "claimed",
                str(handoff.Actor.counsellor(counsellor_telegram_id)),
                {"counsellor": counsellor_telegram_id},
            )
            return True

    async def transfer(
        self,
        ticket_id: int,
        to_telegram_id: int | None,
        actor: str,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Hand an open ticket to another counsellor, or back to the queue (``None``).

        False if the ticket is closed (or, for ``None``, not assigned)."""
        now = self.now()
        async with self._tx(session) as s:
            current = (
                await s.execute(
                    select(TicketRow.assignee_telegram_id, TicketRow.status)
                    .where(TicketRow.id == ticket_id)
                    .with_for_update()
                )
            ).one_or_none()
            if current is None:
                return False
            previous = current.assignee_telegram_id
            if to_telegram_id is None:
                statement = (
                    update(TicketRow)
                    .where(TicketRow.id == ticket_id, TicketRow.status == "assigned")
                    .values(status="queued", assignee_telegram_id=None)
                )
                owner: Owner = "queued"
            else:
                statement = (
                    update(TicketRow)
                    .where(TicketRow.id == ticket_id, TicketRow.status.in_(OPEN_STATUSES))
                    .values(
                        status="assigned",
                        assignee_telegram_id=to_telegram_id,
                        claimed_at=func.coalesce(TicketRow.claimed_at, now),
                    )
                )
                owner = "assigned"
            conversation_id = (
                await s.execute(
                    statement.returning(TicketRow.conversation_id), execution_options=_SYNC
                )
            ).scalar_one_or_none()
            if conversation_id is None:
                return False
            await self._set_conversation_owner(s, conversation_id, owner, now)
            await self._event(
                s, ticket_id, "transferred", actor, {"from": previous, "to": to_telegram_id}
            )
            return True

    async def _close(
        self,
        ticket_id: int,
        status: Literal["resolved", "cancelled"],
        actor: str,
        data: dict[str, Any] | None,
        session: AsyncSession | None,
    ) -> bool:
        now = self.now()
        statement = (
            update(TicketRow)
            .where(TicketRow.id == ticket_id, TicketRow.status.in_(OPEN_STATUSES))
            .values(status=status, open_conversation_id=None, resolved_at=now)
            .returning(TicketRow.conversation_id)
        )
        async with self._tx(session) as s:
            conversation_id = (
                await s.execute(statement, execution_options=_SYNC)
            ).scalar_one_or_none()
            if conversation_id is None:
                return False
            await self._set_conversation_owner(s, conversation_id, "bot", now)
            await self._event(s, ticket_id, status, actor, data or {})
            return True

    async def resolve(
        self,
        ticket_id: int,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Close an open ticket as resolved; the bot answers the graduate again.
        False if it was already closed (only one concurrent caller wins)."""
        return await self._close(ticket_id, "resolved", actor, data, session)

    async def cancel(
        self,
        ticket_id: int,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Close an open ticket as cancelled (e.g. the graduate went back to the bot)."""
        return await self._close(ticket_id, "cancelled", actor, data, session)

    async def _set_conversation_owner(
        self, s: AsyncSession, conversation_id: int, owner: Owner, now: dt.datetime
    ) -> None:
        await self._dml(
            s,
            update(ConversationRow)
            .where(ConversationRow.id == conversation_id)
            .values(owner=owner, updated_at=now),
        )

    async def _mark_once(self, ticket_id: int, column: Any, session: AsyncSession | None) -> bool:
        statement = (
            update(TicketRow)
            .where(TicketRow.id == ticket_id, column.is_(None))
            .values({column: self.now()})
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    async def mark_first_response(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        """Stamp the first counsellor message; True only the first time."""
        return await self._mark_once(ticket_id, TicketRow.first_response_at, session)

    async def mark_reminded(self, ticket_id: int, *, session: AsyncSession | None = None) -> bool:
        """Claim the SLA reminder for this ticket: True for exactly one caller."""
        return await self._mark_once(ticket_id, TicketRow.sla_reminded_at, session)

    async def mark_long_wait_notified(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        """Claim the "still waiting" notice to the graduate: True for exactly one caller."""
        return await self._mark_once(ticket_id, TicketRow.long_wait_notified_at, session)

    async def mark_giveup_offered(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        """Claim the "leave contact details or go back" offer: True for exactly one caller."""
        return await self._mark_once(ticket_id, TicketRow.giveup_offered_at, session)

    async def _waiting(
        self,
        now: dt.datetime,
        older_than: dt.timedelta,
        column: Any,
        session: AsyncSession | None,
    ) -> list[Ticket]:
        query = (
            select(TicketRow)
            .where(
                TicketRow.status == "queued",
                TicketRow.first_response_at.is_(None),
                TicketRow.created_at <= now - older_than,
                column.is_(None),
            )
            .order_by(TicketRow.created_at, TicketRow.id)
        )
        async with self._tx(session) as s:
            return _records(Ticket, (await s.execute(query)).scalars())

    async def tickets_needing_reminder(
        self, now: dt.datetime, older_than: dt.timedelta, *, session: AsyncSession | None = None
    ) -> list[Ticket]:
        """Queued tickets created at least ``older_than`` before ``now``, not reminded yet."""
        return await self._waiting(now, older_than, TicketRow.sla_reminded_at, session)

    async def tickets_needing_long_wait_notice(
        self, now: dt.datetime, older_than: dt.timedelta, *, session: AsyncSession | None = None
    ) -> list[Ticket]:
        """Queued tickets waiting at least ``older_than`` whose graduate was not told yet."""
        return await self._waiting(now, older_than, TicketRow.long_wait_notified_at, session)

    async def tickets_needing_giveup_offer(
        self, now: dt.datetime, older_than: dt.timedelta, *, session: AsyncSession | None = None
    ) -> list[Ticket]:
        """Queued tickets waiting at least ``older_than`` without a give-up offer yet."""
        return await self._waiting(now, older_than, TicketRow.giveup_offered_at, session)

    async def queue_position(self, ticket_id: int, *, session: AsyncSession | None = None) -> int:
        """1-based place among queued tickets (urgent, then high, then normal; FIFO
        within a priority). 0 if the ticket is not queued."""
        async with self._tx(session) as s:
            row = (
                await s.execute(
                    select(_priority_rank().label("rank"), TicketRow.created_at).where(
                        TicketRow.id == ticket_id, TicketRow.status == "queued"
                    )
                )
            ).one_or_none()
            if row is None:
                return 0
            rank, created_at = row
            position = _priority_rank()
            ahead = select(func.count()).where(
                TicketRow.status == "queued",
                or_(
                    position < rank,
                    and_(position == rank, TicketRow.created_at < created_at),
                    and_(
                        position == rank,
                        TicketRow.created_at == created_at,
                        TicketRow.id < ticket_id,
                    ),
                ),
            )
            return int((await s.execute(ahead)).scalar_one()) + 1

    async def set_contact(
        self, ticket_id: int, contact: str | None, *, session: AsyncSession | None = None
    ) -> bool:
        """Contact details the graduate left for a counsellor to get back to them."""
        statement = update(TicketRow).where(TicketRow.id == ticket_id).values(contact=contact)
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    async def set_rating(
        self, ticket_id: int, rating: int, *, session: AsyncSession | None = None
    ) -> bool:
        """The graduate's 1–5 rating of the ticket; only the first one counts.

        Also records a 'rated' event and a ``feedback`` row (kind 'rating') for stats,
        so callers should not add that feedback row themselves."""
        if not 1 <= rating <= 5:
            raise ValueError(f"rating must be 1..5, got {rating}")
        now = self.now()
        statement = (
            update(TicketRow)
            .where(TicketRow.id == ticket_id, TicketRow.rating.is_(None))
            .values(rating=rating)
            .returning(TicketRow.user_id, TicketRow.conversation_id)
        )
        async with self._tx(session) as s:
            row = (await s.execute(statement, execution_options=_SYNC)).one_or_none()
            if row is None:
                return False
            user_id, conversation_id = row
            await s.execute(
                insert(FeedbackRow).values(
                    user_id=user_id,
                    conversation_id=conversation_id,
                    ticket_id=ticket_id,
                    kind="rating",
                    value=rating,
                    created_at=now,
                )
            )
            await self._event(s, ticket_id, "rated", "graduate", {"rating": rating})
            return True

    async def _event(
        self, s: AsyncSession, ticket_id: int, kind: str, actor: str, data: dict[str, Any]
    ) -> int:
        statement = (
            insert(TicketEventRow)
            .values(
                ticket_id=ticket_id, kind=kind, actor=actor, data=_json(data), created_at=self.now()
            )
            .returning(TicketEventRow.id)
        )
        return (await s.execute(statement)).scalar_one()

    async def escalate_ticket(
        self,
        ticket_id: int,
        data: dict[str, Any],
        *,
        actor: str = "bot",
        session: AsyncSession | None = None,
    ) -> Escalated:
        """Make an open ticket a crisis (category 'crisis', priority 'urgent'): a graduate
        whose message to a counsellor the check read as a crisis. Records an 'escalated'
        event with ``data`` (the signals) every time, so the audit trail shows each crisis
        message; the columns change once.

        Race: two replicas escalating the same ticket both record their event; the guarded
        UPDATE (only while open and not yet urgent) changes the row once, and the loser
        reads ``ALREADY``. A ticket resolved meanwhile is ``CLOSED`` and left closed."""
        async with self._tx(session) as s:
            changed = _rowcount(
                await self._dml(
                    s,
                    update(TicketRow)
                    .where(
                        TicketRow.id == ticket_id,
                        TicketRow.status.in_(OPEN_STATUSES),
                        or_(TicketRow.category != "crisis", TicketRow.priority != "urgent"),
                    )
                    .values(category="crisis", priority="urgent"),
                )
            )
            row = await s.get(TicketRow, ticket_id)
            if row is None or row.status not in OPEN_STATUSES:
                return Escalated.CLOSED
            await self._event(s, ticket_id, "escalated", actor, data)
            return Escalated.ESCALATED if changed else Escalated.ALREADY

    async def add_event(
        self,
        ticket_id: int,
        kind: str,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> int:
        """Append to the ticket's audit trail (kind e.g. 'note', 'message_to_graduate',
        'relay_failed'; actor e.g. 'bot', 'counsellor:123', 'graduate', 'cli')."""
        async with self._tx(session) as s:
            return await self._event(s, ticket_id, kind, actor, data or {})

    async def events(
        self, ticket_id: int, *, session: AsyncSession | None = None
    ) -> list[TicketEvent]:
        """The ticket's audit trail, oldest first."""
        query = (
            select(TicketEventRow)
            .where(TicketEventRow.ticket_id == ticket_id)
            .order_by(TicketEventRow.created_at, TicketEventRow.id)
        )
        async with self._tx(session) as s:
            return _records(TicketEvent, (await s.execute(query)).scalars())

    # --- relay links -----------------------------------------------------------------

    def _link_key(
        self, direction: Direction, source_chat_id: int, source_message_id: int
    ) -> ColumnElement[bool]:
        return and_(
            MessageLinkRow.direction == direction,
            MessageLinkRow.source_chat_id == source_chat_id,
            MessageLinkRow.source_message_id == source_message_id,
        )

    async def claim_link(
        self,
        ticket_id: int,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        target_chat_id: int,
        target_message_id: int | None = None,
        *,
        stale_after: dt.timedelta | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Reserve the relay of one message before sending it: True for exactly one
        caller, False if that message was already relayed (or is being relayed) in that
        direction. The desk reserves with ``target_message_id=HANDED_TO_OUTBOX`` and queues
        the copy in the outbox in the same transaction (the link is final at once), then
        sends, then ``complete_link`` with the copy's id. A link reserved without a target
        (an older version's, or ``record_link``'s callers) is completed the same way, or
        dropped with ``release_link``.

        With ``stale_after``, a reservation older than that which was never completed
        (its worker died while sending) is taken over, taking ``target_message_id``: True
        for exactly one caller. A completed link, or one handed to the outbox, is never
        relayed again."""
        now = self.now()
        statement = insert(MessageLinkRow).values(
            ticket_id=ticket_id,
            direction=direction,
            source_chat_id=source_chat_id,
            source_message_id=source_message_id,
            target_chat_id=target_chat_id,
            target_message_id=target_message_id,
            created_at=now,
        )
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    await s.execute(statement)
            except IntegrityError:
                key = self._link_key(direction, source_chat_id, source_message_id)
                if (await s.execute(select(MessageLinkRow.id).where(key))).first() is None:
                    raise  # not a duplicate: e.g. no such ticket
                if stale_after is None:
                    return False
                takeover = (
                    update(MessageLinkRow)
                    .where(
                        key,
                        MessageLinkRow.target_message_id.is_(None),
                        MessageLinkRow.created_at <= now - stale_after,
                    )
                    .values(created_at=now, target_message_id=target_message_id)
                )
                return _rowcount(await self._dml(s, takeover)) == 1
            return True

    async def record_link(
        self,
        ticket_id: int,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        target_chat_id: int,
        target_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Record a relay that already happened; False if that source message was
        already relayed in that direction."""
        return await self.claim_link(
            ticket_id,
            direction,
            source_chat_id,
            source_message_id,
            target_chat_id,
            target_message_id,
            session=session,
        )

    async def complete_link(
        self,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        target_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Fill in the relayed copy's message id after a successful ``claim_link``: once,
        on a link without a target or one handed to the outbox (``HANDED_TO_OUTBOX``, also
        accepted here: the link is final either way)."""
        statement = (
            update(MessageLinkRow)
            .where(
                self._link_key(direction, source_chat_id, source_message_id),
                or_(
                    MessageLinkRow.target_message_id.is_(None),
                    MessageLinkRow.target_message_id == HANDED_TO_OUTBOX,
                ),
            )
            .values(target_message_id=target_message_id)
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    async def release_link(
        self,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Drop an unfinished claim (the send failed) so the message can be relayed later."""
        statement = delete(MessageLinkRow).where(
            self._link_key(direction, source_chat_id, source_message_id),
            MessageLinkRow.target_message_id.is_(None),
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    async def link_for_source(
        self,
        direction: Direction,
        source_chat_id: int,
        source_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> MessageLink | None:
        query = select(MessageLinkRow).where(
            self._link_key(direction, source_chat_id, source_message_id)
        )
        async with self._tx(session) as s:
            row = (await s.execute(query)).scalar_one_or_none()
            return None if row is None else _record(MessageLink, row)

    async def link_for_target(
        self,
        target_chat_id: int,
        target_message_id: int,
        *,
        session: AsyncSession | None = None,
    ) -> MessageLink | None:
        """The link whose relayed copy is this message (e.g. a reply to a relayed message)."""
        query = (
            select(MessageLinkRow)
            .where(
                MessageLinkRow.target_chat_id == target_chat_id,
                MessageLinkRow.target_message_id == target_message_id,
            )
            .order_by(MessageLinkRow.id)
            .limit(1)
        )
        async with self._tx(session) as s:
            row = (await s.execute(query)).scalar_one_or_none()
            return None if row is None else _record(MessageLink, row)

    # --- outbox ----------------------------------------------------------------------

    async def enqueue(
        self,
        dedupe_key: str,
        method: str,
        payload: dict[str, Any],
        ticket_id: int | None = None,
        *,
        not_before: dt.datetime | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """Queue a Bot API call for (re)delivery; False if ``dedupe_key`` is already queued."""
        now = self.now()
        statement = insert(OutboxRow).values(
            dedupe_key=dedupe_key,
            ticket_id=ticket_id,
            method=method,
            payload=_json(payload),
            status="pending",
            attempts=0,
            next_attempt_at=not_before or now,
            created_at=now,
        )
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    await s.execute(statement)
            except IntegrityError:
                query = select(OutboxRow.id).where(OutboxRow.dedupe_key == dedupe_key)
                if (await s.execute(query)).first() is None:
                    raise
                return False
            return True

    async def queue(
        self,
        sends: Sequence[Send],
        *,
        lease: dt.timedelta = SEND_LEASE,
        session: AsyncSession | None = None,
    ) -> list[OutboxItem]:
        """Make Bot API calls durable before the first attempt to send them: outbox rows
        leased to the caller for ``lease`` (their ``next_attempt_at``), so that no outbox
        job sends them while the caller does. The caller sends them in order, marking each
        ``mark_sent``; on failure ``mark_failed`` hands it to the outbox job; if the caller
        dies, the job sends them once the lease has passed. Returns the items written (a
        key already queued is skipped).

        Races: callers queueing the same key at once (a double tap, two replicas) write it
        once: the unique ``dedupe_key`` lets exactly one insert it, and the others (on
        PostgreSQL after waiting for its commit) get nothing back for it."""
        now = self.now()
        async with self._tx(session) as s:
            connection = await s.connection()
            return await connection.run_sync(_queue, sends, now, now + lease)

    async def renew(
        self,
        item_ids: Sequence[int],
        held_until: dt.datetime,
        until: dt.datetime,
        *,
        session: AsyncSession | None = None,
    ) -> set[int]:
        """Extend the lease of pending items that are still held until ``held_until`` (the
        lease this caller wrote) to ``until``; the ids still held. An item missing from the
        answer was sent, or its lease ran out and the outbox job may have taken it: the
        caller must not send it."""
        if not item_ids:
            return set()
        statement = (
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(list(item_ids)),
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at == held_until,
            )
            .values(next_attempt_at=until)
            .returning(OutboxRow.id)
        )
        async with self._tx(session) as s:
            rows = await s.execute(statement, execution_options=_SYNC)
            return {int(row_id) for row_id in rows.scalars()}

    async def move_item(
        self,
        item_id: int,
        payload: dict[str, Any],
        until: dt.datetime,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """A pending item's new parameters (e.g. the forum topic recreated under it),
        leased to the caller until ``until``."""
        statement = (
            update(OutboxRow)
            .where(OutboxRow.id == item_id, OutboxRow.status == "pending")
            .values(payload=_json(payload), next_attempt_at=until)
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    async def postpone(
        self, item_ids: Sequence[int], until: dt.datetime, *, session: AsyncSession | None = None
    ) -> int:
        """Pending items wait until ``until`` (the parts after one that failed: they keep
        their order behind it)."""
        if not item_ids:
            return 0
        statement = (
            update(OutboxRow)
            .where(OutboxRow.id.in_(list(item_ids)), OutboxRow.status == "pending")
            .values(next_attempt_at=until)
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement))

    async def due(
        self,
        now: dt.datetime,
        limit: int = 20,
        *,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        session: AsyncSession | None = None,
    ) -> list[OutboxItem]:
        """Pending items whose time has come, leased to this caller: their
        ``next_attempt_at`` moves ``lease`` ahead, so a concurrent worker does not get the
        same item, and an item whose worker died comes due again after the lease.
        Follow up with ``mark_sent`` or ``mark_failed``."""
        candidates = (
            select(OutboxRow.id)
            .where(OutboxRow.status == "pending", OutboxRow.next_attempt_at <= now)
            .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
            .limit(limit)
            # PostgreSQL: concurrent workers take different items instead of queueing on
            # the same rows (SQLite ignores this; its transactions are serialised anyway)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(candidates.scalar_subquery()),
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + lease)
            .returning(OutboxRow)
        )
        async with self._tx(session) as s:
            rows = (await s.execute(statement, execution_options=_SYNC)).scalars().all()
        items = _records(OutboxItem, rows)
        return sorted(items, key=lambda item: (item.created_at, item.id))

    async def mark_sent(self, item_id: int, *, session: AsyncSession | None = None) -> bool:
        """Telegram took the item: never sent again. (One short transaction: right after
        every message the bot sends, so it runs as the hot path's steps do.)"""
        sent = {"b_id": item_id, "b_now": self.now()}
        if session is not None:
            return _rowcount(await session.execute(_MARK_SENT, sent, execution_options=_SYNC)) == 1

        def work(connection: Connection) -> bool:
            return _rowcount(connection.execute(_MARK_SENT, sent)) == 1

        return await self._run(work)

    async def mark_failed(
        self,
        item_id: int,
        error: str,
        next_attempt_at: dt.datetime,
        dead: bool = False,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Count a failed attempt; retry at ``next_attempt_at`` or give up (``dead``)."""
        statement = (
            update(OutboxRow)
            .where(OutboxRow.id == item_id, OutboxRow.status == "pending")
            .values(
                attempts=OutboxRow.attempts + 1,
                last_error=redact(error)[:MAX_ERROR_CHARS],
                next_attempt_at=next_attempt_at,
                status="dead" if dead else "pending",
            )
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    async def prune_outbox(
        self,
        before: dt.datetime,
        *,
        statuses: Sequence[str] = ("sent", "dead"),
        session: AsyncSession | None = None,
    ) -> int:
        """Delete sent and dead items (or those of ``statuses``) created before
        ``before``; how many."""
        statement = delete(OutboxRow).where(
            OutboxRow.status.in_(list(statuses)), OutboxRow.created_at < before
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement))

    # --- rate limit ------------------------------------------------------------------

    async def count_message(
        self, user_id: int, now: dt.datetime, *, session: AsyncSession | None = None
    ) -> float:
        """Count one message of this user; returns how many they sent in the last minute,
        this one included (a sliding window: this minute's count plus the previous
        minute's, weighted by how much of it is still inside the window). Every replica
        counts in the same rows."""
        async with self._tx(session) as s:
            connection = await s.connection()
            return await connection.run_sync(_count_message, user_id, now)

    async def prune_rate_buckets(
        self, before: dt.datetime, *, session: AsyncSession | None = None
    ) -> int:
        statement = delete(RateBucketRow).where(
            RateBucketRow.minute < int(before.timestamp()) // 60
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement))

    # --- feedback and unanswered questions -------------------------------------------

    async def has_feedback(
        self, user_id: int, turn_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        """Whether this user already rated this answer (a double tap counts once)."""
        query = select(FeedbackRow.id).where(
            FeedbackRow.user_id == user_id, FeedbackRow.turn_id == turn_id
        )
        async with self._tx(session) as s:
            return (await s.execute(query.limit(1))).first() is not None

    async def add_feedback(
        self,
        user_id: int,
        kind: FeedbackKind,
        value: int,
        *,
        conversation_id: int | None = None,
        turn_id: int | None = None,
        ticket_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> int:
        """A thumb (value 1 up, -1 down) or a 1–5 rating; returns its id."""
        if kind == "thumb" and value not in (1, -1):
            raise ValueError(f"a thumb is 1 or -1, got {value}")
        if kind == "rating" and not 1 <= value <= 5:
            raise ValueError(f"a rating is 1..5, got {value}")
        statement = (
            insert(FeedbackRow)
            .values(
                user_id=user_id,
                conversation_id=conversation_id,
                turn_id=turn_id,
                ticket_id=ticket_id,
                kind=kind,
                value=value,
                created_at=self.now(),
            )
            .returning(FeedbackRow.id)
        )
        async with self._tx(session) as s:
            return (await s.execute(statement)).scalar_one()

    async def add_unanswered(
        self,
        user_id: int | None,
        question: str,
        lang: str | None,
        confidence: float | None,
        reason: UnansweredReason,
        *,
        session: AsyncSession | None = None,
    ) -> int:
        """Log a question the bot could not answer well. The text is redacted (ID,
        phone, e-mail and bank numbers) before it is written."""
        logged = Unanswered(user_id, question, lang, confidence, reason)
        async with self._tx(session) as s:
            return int((await s.execute(logged.statement(self.now()))).scalar_one())

    async def list_unanswered(
        self, since: dt.datetime, limit: int = 100, *, session: AsyncSession | None = None
    ) -> list[UnansweredQuestion]:
        """Unanswered questions logged since ``since``, newest first."""
        query = (
            select(UnansweredRow)
            .where(UnansweredRow.created_at >= since)
            .order_by(UnansweredRow.created_at.desc(), UnansweredRow.id.desc())
            .limit(limit)
        )
        async with self._tx(session) as s:
            return _records(UnansweredQuestion, (await s.execute(query)).scalars())

    # --- webhook updates -------------------------------------------------------------

    async def claim_update(
        self,
        update_id: int,
        now: dt.datetime,
        stale_after: dt.timedelta,
        *,
        chat_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> bool:
        """True if this caller should process the update: it is new, or an earlier claim
        is still 'processing' but its worker presumably died: the chat lease it took for
        the update (``lease_chat``, renewed while it works) ran out after the claim, or,
        for an update that never held a chat lease, ``stale_after`` has passed."""
        async with self._tx(session) as s:
            try:
                async with s.begin_nested():
                    await s.execute(
                        insert(ProcessedUpdateRow).values(
                            update_id=update_id,
                            status="processing",
                            claimed_at=now,
                            chat_id=chat_id,
                        )
                    )
                return True
            except IntegrityError:
                pass
            stale = ProcessedUpdateRow.claimed_at <= now - stale_after
            lease_ran_out = (
                await s.execute(
                    select(ChatLeaseRow.expires_at).where(
                        ChatLeaseRow.update_id == update_id, ChatLeaseRow.expires_at <= now
                    )
                )
            ).scalar()
            if lease_ran_out is not None:
                # Compared with the claim's own time, so that of two workers taking over
                # at once only the first wins: its claim is newer than the lease's end.
                stale = or_(stale, ProcessedUpdateRow.claimed_at < lease_ran_out)
            statement = update(ProcessedUpdateRow).where(
                ProcessedUpdateRow.update_id == update_id,
                ProcessedUpdateRow.status == "processing",
                stale,
            )
            return _rowcount(await self._dml(s, statement.values(claimed_at=now))) == 1

    async def lease_chat(
        self,
        chat: tuple[int, int],
        update_id: int,
        now: dt.datetime,
        lease: dt.timedelta,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Take the chat (chat id, forum topic id or 0) for this update, unless another
        update holds it and its lease has not run out. Replicas process one update of a
        chat at a time; ``release_chat`` hands it on."""
        statement, values = _lease_chat(self.db.dialect), _lease(chat, update_id, now, lease)
        async with self._tx(session) as s:
            return (await s.execute(statement, values)).scalar_one_or_none() == update_id

    async def release_chat(
        self, chat: tuple[int, int], update_id: int, *, session: AsyncSession | None = None
    ) -> bool:
        async with self._tx(session) as s:
            released = await s.execute(
                _RELEASE_CHAT, _release(chat, update_id), execution_options=_SYNC
            )
            return _rowcount(released) == 1

    async def _run(self, work: Callable[..., _T], *args: Any) -> _T:
        """``Database.run`` with outages as ``StorageError`` (as ``transaction``)."""
        try:
            return await self.db.run(work, *args)
        except _OUTAGES as exc:
            raise self.db.unavailable(exc) from exc

    async def begin_update(
        self,
        update_id: int,
        chat: tuple[int, int] | None,
        lease: dt.timedelta,
        *,
        graduate: tuple[int, str | None] | None = None,
        count: bool = False,
        payload: dict[str, Any] | None = None,
    ) -> Begun | None:
        """The first step of a new update, in one transaction: claim it, take its chat
        (``lease_chat``) and, for a graduate's text (``graduate``: their Telegram id and
        name), ``load_graduate`` and, with ``count``, count the message
        (``count_message``). ``payload`` (the update itself, in long polling) is kept until
        the update is done, for ``stranded_updates``.

        None when the update was seen before (a replay, or a retry after a crash): then
        ``claim_update`` decides."""
        now = self.now()
        dialect = self.db.dialect
        claim = {
            "b_update_id": update_id,
            "b_now": now,
            "b_chat_id": chat and chat[0],
            "b_payload": payload,
        }

        def work(connection: Connection) -> Begun | None:
            new = connection.execute(_claim_new_update(dialect), claim).first()
            if new is None:
                return None
            if chat is not None:
                holder = connection.execute(
                    _lease_chat(dialect), _lease(chat, update_id, now, lease)
                )
                if holder.scalar_one_or_none() != update_id:
                    return Begun(ours=False)
            if graduate is None:
                return Begun(ours=True)
            user, conversation = _graduate(connection, graduate[0], graduate[1], now)
            sent = _count_message(connection, user.id, now) if count else 0.0
            return Begun(ours=True, graduate=(user, conversation), sent_last_minute=sent)

        return await self._run(work)

    async def finish_exchange(
        self,
        update_id: int,
        conversation_id: int,
        state: dict[str, Any],
        question: NewTurn,
        answer: NewTurn,
        *,
        chat: tuple[int, int] | None = None,
        unanswered: Unanswered | None = None,
        finish: bool = True,
        sends: Callable[[int], Sequence[Send]] | None = None,
        lease: dt.timedelta = SEND_LEASE,
    ) -> Exchange | None:
        """Mark the update done (unless ``finish`` is False), record the answer
        (``_record_answer``), log the question as ``unanswered`` when given, queue the
        messages that carry the answer (``sends(turn id)``: ``queue``, leased to the caller
        for ``lease``) and hand its ``chat`` on (``release_chat``), in one transaction: the
        answer is durable before the first attempt to send it. None, with nothing written,
        when the bot no longer owns the conversation."""
        now = self.now()

        def work(connection: Connection) -> Exchange:
            if finish:
                connection.execute(_FINISH_UPDATE, {"b_update_id": update_id, "b_now": now})
            turn = _record_answer(connection, conversation_id, state, question, answer, now)
            if turn is None:
                raise _Withheld
            if unanswered is not None:
                connection.execute(unanswered.statement(now))
            queued = _queue(connection, sends(turn), now, now + lease) if sends else []
            if chat is not None:
                connection.execute(_RELEASE_CHAT, _release(chat, update_id))
            return Exchange(turn, tuple(queued))

        try:
            return await self._run(work)
        except _Withheld:
            return None

    async def end_update(
        self, update_id: int, chat: tuple[int, int] | None, *, finish: bool = True
    ) -> None:
        """The last step of an update: mark it done (unless ``finish`` is False: done
        already) and hand its chat on (``release_chat``), in one transaction."""
        now = self.now()

        def work(connection: Connection) -> None:
            if finish:
                connection.execute(_FINISH_UPDATE, {"b_update_id": update_id, "b_now": now})
            if chat is not None:
                connection.execute(_RELEASE_CHAT, _release(chat, update_id))

        if finish or chat is not None:
            await self._run(work)

    async def finish_update(self, update_id: int, *, session: AsyncSession | None = None) -> bool:
        async with self._tx(session) as s:
            done = {"b_update_id": update_id, "b_now": self.now()}
            finished = await s.execute(_FINISH_UPDATE, done, execution_options=_SYNC)
            return _rowcount(finished) == 1

    async def stranded_updates(
        self,
        now: dt.datetime,
        stale_after: dt.timedelta,
        limit: int = 50,
        *,
        session: AsyncSession | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Updates still 'processing' whose process presumably died (as ``claim_update``
        sees them: the chat lease the update held ran out, or, without one, ``stale_after``
        passed), with the update kept at ``begin_update`` (long polling), oldest first: to
        process again (``claim_update`` lets one caller take each over)."""
        lease_end = (
            select(func.max(ChatLeaseRow.expires_at))
            .where(ChatLeaseRow.update_id == ProcessedUpdateRow.update_id)
            .correlate(ProcessedUpdateRow)
            .scalar_subquery()
        )
        query = (
            select(ProcessedUpdateRow.update_id, ProcessedUpdateRow.payload)
            .where(
                # the partial index's own condition, as a literal (a bound parameter would
                # not let the planner use the index: a scan of every update kept 2 days)
                PROCESSING,
                ProcessedUpdateRow.payload.is_not(None),
                or_(
                    and_(
                        lease_end.is_not(None),
                        lease_end <= now,
                        ProcessedUpdateRow.claimed_at < lease_end,
                    ),
                    and_(lease_end.is_(None), ProcessedUpdateRow.claimed_at <= now - stale_after),
                ),
            )
            .order_by(ProcessedUpdateRow.claimed_at, ProcessedUpdateRow.update_id)
            .limit(limit)
        )
        async with self._tx(session) as s:
            rows = (await s.execute(query)).all()
        return [(int(update_id), dict(payload)) for update_id, payload in rows if payload]

    async def update_status(
        self, update_id: int, *, session: AsyncSession | None = None
    ) -> str | None:
        """'processing' (claimed, not finished), 'done', or None (never claimed, or pruned):
        what a webhook answers for an update that ``claim_update`` refused."""
        query = select(ProcessedUpdateRow.status).where(ProcessedUpdateRow.update_id == update_id)
        async with self._tx(session) as s:
            return (await s.execute(query)).scalar()

    async def prune_updates(
        self, before: dt.datetime, *, session: AsyncSession | None = None
    ) -> int:
        """Forget finished updates claimed before ``before`` (Telegram keeps undelivered
        updates for 24 hours, so a day or more is a safe horizon)."""
        statement = delete(ProcessedUpdateRow).where(
            ProcessedUpdateRow.status == "done", ProcessedUpdateRow.claimed_at < before
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement))

    # --- knowledge-base uploads ------------------------------------------------------

    async def add_upload(
        self,
        admin_telegram_id: int,
        file_name: str,
        telegram_file_id: str,
        *,
        session: AsyncSession | None = None,
    ) -> int:
        """Record a document an admin sent, before it is ingested; returns its id."""
        statement = (
            insert(KbUploadRow)
            .values(
                admin_telegram_id=admin_telegram_id,
                file_name=file_name,
                telegram_file_id=telegram_file_id,
                status="pending",
                created_at=self.now(),
            )
            .returning(KbUploadRow.id)
        )
        async with self._tx(session) as s:
            return (await s.execute(statement)).scalar_one()

    async def get_upload(
        self, upload_id: int, *, session: AsyncSession | None = None
    ) -> Upload | None:
        async with self._tx(session) as s:
            row = await s.get(KbUploadRow, upload_id)
            return None if row is None else _record(Upload, row)

    async def pending_uploads(
        self,
        *,
        created_before: dt.datetime | None = None,
        session: AsyncSession | None = None,
    ) -> list[Upload]:
        """Uploads not ingested yet (e.g. interrupted by a restart), oldest first; with
        ``created_before``, only those recorded before that moment."""
        query = select(KbUploadRow).where(KbUploadRow.status == "pending")
        if created_before is not None:
            query = query.where(KbUploadRow.created_at < created_before)
        query = query.order_by(KbUploadRow.created_at, KbUploadRow.id)
        async with self._tx(session) as s:
            return _records(Upload, (await s.execute(query)).scalars())

    async def finish_upload(
        self,
        upload_id: int,
        status: Literal["done", "failed"],
        report: dict[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Close a pending upload with the ingest report; False if it was not pending."""
        statement = (
            update(KbUploadRow)
            .where(KbUploadRow.id == upload_id, KbUploadRow.status == "pending")
            .values(
                status=status,
                report=None if report is None else _json(report),
                finished_at=self.now(),
            )
        )
        async with self._tx(session) as s:
            return _rowcount(await self._dml(s, statement)) == 1

    # --- analytics and retention -----------------------------------------------------

    async def stats(
        self,
        since: dt.datetime,
        until: dt.datetime | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> Stats:
        """Usage figures for ``since <= created_at < until`` (until: no upper bound)."""

        def window(column: Any) -> ColumnElement[bool]:
            if until is None:
                return cast(ColumnElement[bool], column >= since)
            return and_(column >= since, column < until)

        async with self._tx(session) as s:

            async def scalar(*conditions: ColumnElement[bool], of: Any) -> int:
                query = select(func.count(of)).where(*conditions)
                return int((await s.execute(query)).scalar_one())

            questions = await scalar(
                TurnRow.role == "graduate", window(TurnRow.created_at), of=TurnRow.id
            )
            answered = await scalar(
                TurnRow.role == "bot",
                TurnRow.handoff.is_(False),
                or_(TurnRow.intent.is_(None), TurnRow.intent != "unclear"),
                window(TurnRow.created_at),
                of=TurnRow.id,
            )
            handed_off = await scalar(window(TicketRow.created_at), of=TicketRow.id)
            thumb = and_(FeedbackRow.kind == "thumb", window(FeedbackRow.created_at))
            thumbs_up = await scalar(thumb, FeedbackRow.value > 0, of=FeedbackRow.id)
            thumbs_down = await scalar(thumb, FeedbackRow.value < 0, of=FeedbackRow.id)
            rated = (
                await s.execute(
                    select(func.count(FeedbackRow.id), func.avg(FeedbackRow.value)).where(
                        FeedbackRow.kind == "rating", window(FeedbackRow.created_at)
                    )
                )
            ).one()
            responses = await s.execute(
                select(TicketRow.created_at, TicketRow.first_response_at).where(
                    window(TicketRow.created_at), TicketRow.first_response_at.is_not(None)
                )
            )
            waits = [
                (first - created).total_seconds()
                for created, first in responses
                if first is not None
            ]
            unanswered = await scalar(window(UnansweredRow.created_at), of=UnansweredRow.id)
        ratings, mean = rated
        return Stats(
            since=since,
            questions=questions,
            answered=answered,
            handed_off=handed_off,
            thumbs_up=thumbs_up,
            thumbs_down=thumbs_down,
            ratings=int(ratings),
            rating_mean=None if mean is None else float(mean),
            median_first_response_s=statistics.median(waits) if waits else None,
            unanswered=unanswered,
        )

    async def delete_transcripts_older_than(
        self, cutoff: dt.datetime, *, session: AsyncSession | None = None
    ) -> dict[str, int]:
        """Retention (``GRADGUIDE_RETENTION_DAYS``): what graduates wrote before ``cutoff``
        goes — their turns and attachments, the transcripts and the contact details of
        tickets closed before it, the dialogue state of conversations idle since before it
        (owned by the bot), and unanswered questions. Tickets, ratings and counts stay for the
        records. Returns rows changed per kind ("attachments" only when some were deleted)."""
        async with self._tx(session) as s:
            turns = _rowcount(
                await self._dml(s, delete(TurnRow).where(TurnRow.created_at < cutoff))
            )
            attachments = _rowcount(
                await self._dml(
                    s,
                    delete(TicketAttachmentRow).where(TicketAttachmentRow.created_at < cutoff),
                )
            )
            closed = await s.execute(
                select(TicketRow.id, TicketRow.transcript, TicketRow.contact).where(
                    TicketRow.status.in_(["resolved", "cancelled"]),
                    TicketRow.resolved_at < cutoff,
                )
            )
            ids = [ticket_id for ticket_id, transcript, contact in closed if transcript or contact]
            if ids:
                statement = (
                    update(TicketRow)
                    .where(TicketRow.id.in_(ids))
                    .values(transcript=[], contact=None)
                )
                await self._dml(s, statement)
            idle = await s.execute(
                select(ConversationRow.id, ConversationRow.state).where(
                    ConversationRow.updated_at < cutoff, ConversationRow.owner == "bot"
                )
            )
            stale = [conversation_id for conversation_id, state in idle if state]
            if stale:
                statement = (
                    update(ConversationRow)
                    .where(ConversationRow.id.in_(stale))
                    .values(state={}, version=ConversationRow.version + 1)
                )
                await self._dml(s, statement)
            unanswered = _rowcount(
                await self._dml(s, delete(UnansweredRow).where(UnansweredRow.created_at < cutoff))
            )
        removed = {
            "turns": turns,
            "transcripts": len(ids),
            "conversations": len(stale),
            "unanswered": unanswered,
        }
        if attachments:
            removed["attachments"] = attachments
        return removed
