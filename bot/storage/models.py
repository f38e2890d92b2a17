"""The database schema as SQLAlchemy declarative models (the migrations mirror it).

These classes are internal to ``bot.storage``: the public ``Store`` methods return the
frozen records of ``bot.storage.records`` instead, so no caller holds a live ORM object.
Enumerated values are plain strings guarded by CHECK constraints, which behave the same
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from bot.handoff.models import CATEGORIES, OWNERS, PRIORITIES, TICKET_STATUSES

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USER_ROLES = ("graduate", "counsellor", "admin")
LANGS = ("zh", "en")
TURN_ROLES = ("graduate", "bot", "counsellor", "system")
DIRECTIONS = ("to_counsellors", "to_graduate")
OUTBOX_STATUSES = ("pending", "sent", "dead")
FEEDBACK_KINDS = ("thumb", "rating")
UNANSWERED_REASONS = ("low_confidence", "no_answer", "handoff")
UPDATE_STATUSES = ("processing", "done")
UPLOAD_STATUSES = ("pending", "done", "failed")
COUNSELLOR_KINDS = ("person", "cli")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored
    as naive UTC text (which sorts and compares correctly) and read back as aware UTC.
    Naive datetimes are refused: they are almost always a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (
        _one_of("role", USER_ROLES, "role"),
        _one_of("lang", LANGS, "lang"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(8))
    region: Mapped[str | None] = mapped_column(String(64))
    consent_at: Mapped[dt.datetime | None]
    role: Mapped[str] = mapped_column(String(16), default="graduate")
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (_one_of("owner", OWNERS, "owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    state: Mapped[dict[str, Any]]
    owner: Mapped[str] = mapped_column(String(16), default="bot")
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime]


class TurnRow(Base):
    __tablename__ = "turns"
    __table_args__ = (
        _one_of("role", TURN_ROLES, "role"),
        Index(None, "conversation_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(8))
    intent: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[float | None] = mapped_column(Float)
    handoff: Mapped[bool] = mapped_column(Boolean, default=False)
    citations: Mapped[list[Any]]
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(index=True)


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        _one_of("status", TICKET_STATUSES, "status"),
        _one_of("category", CATEGORIES, "category"),
        _one_of("priority", PRIORITIES, "priority"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating"),
        UniqueConstraint("topic_chat_id", "topic_id"),
        Index(None, "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    open_conversation_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    """Equals ``conversation_id`` while the ticket is open, NULL once closed: the unique
    index then allows at most one open ticket per conversation on every backend."""
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    draft_answer: Mapped[str | None] = mapped_column(Text)
    citations: Mapped[list[Any]]
    transcript: Mapped[list[Any]]
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("counsellors.id"), index=True)
    """The counsellor holding the ticket (``counsellors.id``), whichever front end they use."""
    topic_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    topic_id: Mapped[int | None] = mapped_column(BigInteger)
    topic_name: Mapped[str | None] = mapped_column(Text)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime]
    claimed_at: Mapped[dt.datetime | None]
    first_response_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    rating: Mapped[int | None] = mapped_column(Integer)
    sla_reminded_at: Mapped[dt.datetime | None]
    long_wait_notified_at: Mapped[dt.datetime | None]
    giveup_offered_at: Mapped[dt.datetime | None]
    contact: Mapped[str | None] = mapped_column(Text)
    signals: Mapped[list[Any] | None]
    """What the message check found in the message that opened the ticket (the decided
    class first: ``["violence", "ordinary"]``), shown on the card; NULL before 0006."""


class TicketEventRow(Base):
    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]


class MessageLinkRow(Base):
    __tablename__ = "message_links"
    __table_args__ = (
        _one_of("direction", DIRECTIONS, "direction"),
        UniqueConstraint("direction", "source_chat_id", "source_message_id"),
        Index(None, "target_chat_id", "target_message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    source_chat_id: Mapped[int] = mapped_column(BigInteger)
    source_message_id: Mapped[int] = mapped_column(BigInteger)
    target_chat_id: Mapped[int] = mapped_column(BigInteger)
    target_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime]


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        _one_of("status", OUTBOX_STATUSES, "status"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (_one_of("kind", FEEDBACK_KINDS, "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    turn_id: Mapped[int | None] = mapped_column(
        ForeignKey("turns.id", ondelete="SET NULL"), index=True
    )
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(index=True)


class UnansweredRow(Base):
    __tablename__ = "unanswered"
    __table_args__ = (_one_of("reason", UNANSWERED_REASONS, "reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    question: Mapped[str] = mapped_column(Text)
    """Always redacted before it is written (``bot.privacy``)."""
    lang: Mapped[str | None] = mapped_column(String(8))
    confidence: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(index=True)


PROCESSING = text("status = 'processing'")


class ProcessedUpdateRow(Base):
    __tablename__ = "processed_updates"
    __table_args__ = (
        _one_of("status", UPDATE_STATUSES, "status"),
        # the updates still being processed, for finding those a dead process left
        # (``Store.stranded_updates``): a few rows, however many are done
        Index(None, "claimed_at", sqlite_where=PROCESSING, postgresql_where=PROCESSING),
    )

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16))
    claimed_at: Mapped[dt.datetime]
    done_at: Mapped[dt.datetime | None]
    chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    """The chat the update came from (so /forget can remove the trace of theirs)."""
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    """Long polling: the update itself while it is being processed (Telegram will not
    deliver it again), so that it can be resumed if its process dies; cleared when it is
    done."""


class ChatLeaseRow(Base):
    """Who is processing a chat's update right now (one at a time, across replicas): the
    holder's update id until it finishes, or until ``expires_at`` if its replica died."""

    __tablename__ = "chat_leases"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    update_id: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[dt.datetime]


class RateBucketRow(Base):
    """A graduate's messages per minute, for the rate limit (shared by all replicas)."""

    __tablename__ = "rate_buckets"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(Integer)


class KbUploadRow(Base):
    __tablename__ = "kb_uploads"
    __table_args__ = (_one_of("status", UPLOAD_STATUSES, "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_telegram_id: Mapped[int] = mapped_column(BigInteger)
    file_name: Mapped[str] = mapped_column(Text)
    telegram_file_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]


# --- the web console (``bot.storage.console_store``) ----------------------------------

WEB_ROLES = ("counsellor", "admin")
CURATED_STATUSES = ("proposed", "approved", "rejected")


class WebAccountRow(Base):
    """A counsellor's or admin's console login (graduates never have one)."""

    __tablename__ = "web_accounts"
    __table_args__ = (_one_of("role", WEB_ROLES, "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    """Set when the counsellor also works in the Telegram group: one identity on tickets."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime]
    last_login_at: Mapped[dt.datetime | None]


class CounsellorRow(Base):
    """One counsellor, whichever front end they work in: a Telegram id listed in
    ``GRADGUIDE_COUNSELLOR_IDS``, a console account, or both (one person); ``kind`` 'cli' is
    the single row standing for ``gradguide handoffs`` at the server's terminal (a partial
    unique index keeps it single). Rows are never deleted: closed tickets keep naming their
    holder."""

    __tablename__ = "counsellors"
    __table_args__ = (
        _one_of("kind", COUNSELLOR_KINDS, "kind"),
        Index(
            "uq_counsellors_cli",
            "kind",
            unique=True,
            sqlite_where=text("kind = 'cli'"),
            postgresql_where=text("kind = 'cli'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("web_accounts.id", ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[dt.datetime]


class WebSessionRow(Base):
    """A logged-in browser: the cookie holds a random token, the table its SHA-256."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("web_accounts.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class WebLoginAttemptRow(Base):
    """Failed logins, per account name and per client address (the rate limit)."""

    __tablename__ = "web_login_attempts"
    __table_args__ = (Index(None, "key", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[dt.datetime]


class WebAuditRow(Base):
    """Every console action of a counsellor or admin (and every login, failed or not)."""

    __tablename__ = "web_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("web_accounts.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(index=True)


class CannedReplyRow(Base):
    __tablename__ = "canned_replies"
    __table_args__ = (_one_of("lang", LANGS, "lang"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(8))
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("web_accounts.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime]


class CuratedAnswerRow(Base):
    """A counsellor's reply proposed as the answer to a question pattern; used by the agent
    once an admin approves it. Question and answer are redacted before they are written."""

    __tablename__ = "curated_answers"
    __table_args__ = (
        _one_of("status", CURATED_STATUSES, "status"),
        _one_of("lang", LANGS, "lang"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(8))
    doc_id: Mapped[str] = mapped_column(String(128))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="proposed", index=True)
    card: Mapped[str | None] = mapped_column(Text, default=None)
    """Once approved: the answer card (``bot.kb.cards.CuratedCard``) as JSON, redacted."""
    proposed_by: Mapped[int | None] = mapped_column(
        ForeignKey("web_accounts.id", ondelete="SET NULL")
    )
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("web_accounts.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]


ATTACHMENT_KINDS = (
    "photo",
    "document",
    "voice",
    "video",
    "audio",
    "sticker",
    "animation",
    "video_note",
)


class TicketAttachmentRow(Base):
    """A file a graduate sent while their ticket was open (relayed to the topic as well).

    The file stays in Telegram: this row keeps its ``file_id``, with which the console
    fetches it through the Bot API. One row per graduate message (a replayed update adds
    none); deleted with the ticket (``Store.forget_user``) and by retention."""

    __tablename__ = "ticket_attachments"
    __table_args__ = (
        _one_of("kind", ATTACHMENT_KINDS, "kind"),
        UniqueConstraint("chat_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    file_id: Mapped[str] = mapped_column(Text)
    file_unique_id: Mapped[str] = mapped_column(String(128))
    file_name: Mapped[str | None] = mapped_column(Text)
    mime_type: Mapped[str | None] = mapped_column(String(255))
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    caption: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(index=True)


# --- erasures (``bot.storage.erasures``) -------------------------------------------------

ERASURE_STEPS = ("messages", "topic", "rename", "done", "failed")


class ErasureRow(Base):
    """What /forget still has to delete in Telegram: the bot's messages carrying a forgotten
    graduate's words in one chat or forum topic of the counsellor group (the ticket card,
    the copies of their messages), or the whole topic. No personal data: chat, topic and
    message ids, and the number the deleted ticket had."""

    __tablename__ = "erasures"
    __table_args__ = (
        _one_of("step", ERASURE_STEPS, "step"),
        Index(None, "step", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int | None] = mapped_column(BigInteger)
    """The forum topic (None: messages in the group outside any topic)."""
    ticket_number: Mapped[int] = mapped_column(Integer)
    """The deleted ticket's id, for the counsellors ("#42")."""
    message_ids: Mapped[list[Any]]
    """The messages still to delete (step 'messages')."""
    whole: Mapped[bool] = mapped_column(Boolean, default=False)
    """The topic holds copies whose ids were never learnt: it is deleted whole (after the
    messages that are known, so that less is left if Telegram refuses that)."""
    step: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    """While the step is pending, a time in the future is a lease (as in the outbox)."""
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
