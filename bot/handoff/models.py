"""The handoff vocabulary, defined once: what a ticket's status, category and priority may
be, who owns a conversation, and who acted (``Actor``). The storage layer's CHECK
constraints, its records' types, triage and the channels' labels all read these.

Only types, constants and values live here (no behaviour), so every layer may import it, storage
included.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, get_args

TicketStatus = Literal["queued", "assigned", "resolved", "cancelled"]
Category = Literal["policy", "rights", "procedure", "crisis", "other"]
Priority = Literal["urgent", "high", "normal"]
Owner = Literal["bot", "queued", "assigned"]
"""Who answers the graduate now: the bot, nobody yet (a ticket waits), or a counsellor."""

TICKET_STATUSES: Final[tuple[TicketStatus, ...]] = get_args(TicketStatus)
OPEN_STATUSES: Final[tuple[TicketStatus, ...]] = ("queued", "assigned")
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)
PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)
"""Most urgent first (the queue's order)."""
OWNERS: Final[tuple[Owner, ...]] = get_args(Owner)


ActorKind = Literal["counsellor", "web", "admin", "cli", "bot", "graduate", "system", "anonymous"]
PLAIN_ACTORS: Final[tuple[ActorKind, ...]] = ("bot", "graduate", "system", "cli", "anonymous")
"""Actors that are a role, not a person (written without an identity)."""


@dataclass(frozen=True)
class Actor:
    """Who did something to a ticket or in the console, written to ticket events and the
    audit log as before (``str(actor)``: ``counsellor:<telegram id>``, ``web:<username>``,
    ``cli``), so no stored data changes."""

    kind: ActorKind
    identity: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.identity}" if self.identity else self.kind

    @classmethod
    def counsellor(cls, telegram_id: int) -> Actor:
        """A counsellor working in Telegram (or a console account's counsellor id)."""
        return cls("counsellor", str(telegram_id))

    @classmethod
    def web(cls, username: str) -> Actor:
        """A console account."""
        return cls("web", username)


CLI: Final = Actor("cli")
"""Someone at the server's terminal (`gradguide handoffs`, `gradguide users`)."""


@dataclass(frozen=True, slots=True)
class Counsellor:
    """A counsellor acting on a ticket, whichever front end they work in: ``id`` is their
    row in ``counsellors`` (what a ticket's assignee holds; one person whether they work in
    Telegram, the console or both; one row for the command line), ``name`` is shown to
    colleagues (and, when names are visible, to the graduate), ``actor`` is written to the
    trail (where they acted from: ``counsellor:<telegram id>``, ``web:<user>``, ``cli``),
    ``telegram_id`` is theirs when they work in the Telegram group."""

    id: int
    name: str
    actor: Actor
    telegram_id: int | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """The message a counsellor's reply came from: a chat and a message id, unique per
    message in each front end (the relay's once-only key)."""

    chat_id: int
    message_id: int


class Relayed(enum.Enum):
    """What became of a message for the graduate: a counsellor's reply, a draft sent, a
    graduate's message copied to the counsellors."""

    SENT = "sent"
    """The channel took it (marked sent in the outbox)."""
    QUEUED = "queued"
    """In the outbox, not sent yet: the channel kept failing or is unreachable (the outbox
    job tries again), there is no topic to copy into yet, or this process's lease on it ran
    out (another process is sending it). It will be delivered once, without a caller."""
    ALREADY = "already"
    """This message was relayed (or the draft sent) before: a replayed or resumed update,
    another replica, a second click. Nothing was done."""
    REFUSED = "refused"
    """The channel refused it on its merits (the bot was blocked, a bad request): given up."""
    NOWHERE = "nowhere"
    """Nothing to send it to: no counsellor group, no graduate's chat, a closed ticket, no
    draft."""
