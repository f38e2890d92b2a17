"""The handoff vocabulary, defined once: what a ticket's status, category and priority may
be, and who owns a conversation. The storage layer's CHECK constraints, its records' types,
triage and the channels' labels all read these.

Only types and constants live here (no behaviour), so every layer may import it, storage
included.
"""

from __future__ import annotations

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
