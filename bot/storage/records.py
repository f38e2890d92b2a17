"""The frozen records the store returns and takes (never live ORM objects), and the
storage vocabulary's literals."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import insert

from bot.handoff.models import OPEN_STATUSES, Category, Owner, Priority, TicketStatus
from bot.privacy import redact
from bot.storage.models import UnansweredRow
from bot.storage.sql import json

Role = Literal["graduate", "counsellor", "admin"]
TurnRole = Literal["graduate", "bot", "counsellor", "system"]
Direction = Literal["to_counsellors", "to_graduate"]
FeedbackKind = Literal["thumb", "rating"]
UnansweredReason = Literal["low_confidence", "no_answer", "handoff"]
UploadStatus = Literal["pending", "done", "failed"]
OutboxStatus = Literal["pending", "sent", "dead"]

MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True, slots=True)
class CounsellorRecord:
    """A row of ``counsellors``: one person on tickets (a listed Telegram id, a console
    account, or both), or the command line (``kind`` 'cli')."""

    id: int
    kind: Literal["person", "cli"]
    telegram_id: int | None
    account_id: int | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class User:
    id: int
    telegram_id: int | None
    display_name: str | None
    lang: str | None
    region: str | None
    consent_at: dt.datetime | None
    role: Role
    created_at: dt.datetime
    last_seen_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    id: int
    user_id: int
    state: dict[str, Any]
    """The agent's serialised ``Conversation`` (``{}`` for a new one)."""
    owner: Owner
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
            "citations": json(list(self.citations)),
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
    role: TurnRole
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
    status: TicketStatus
    open_conversation_id: int | None
    category: Category
    priority: Priority
    reason: str
    summary: str
    draft_answer: str | None
    citations: list[Any]
    transcript: list[Any]
    assignee_id: int | None
    """The counsellor holding it (``CounsellorRecord.id``)."""
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
    status: OutboxStatus
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
    """An ``UnansweredReason``, or why the console lists it: 'thumbs_down', 'weak_answer'."""
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Upload:
    id: int
    admin_telegram_id: int
    file_name: str
    telegram_file_id: str
    status: UploadStatus
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


@dataclass(frozen=True, slots=True)
class Begun:
    """What ``Store.begin_update`` did: the update is claimed; ``ours`` if its chat was
    free; a graduate's user and conversation when they were read on the way."""

    ours: bool
    graduate: tuple[User, ConversationRecord] | None = None
    sent_last_minute: float = 0.0
