"""What the handoff service needs from a front end, and nothing more.

The service decides (who holds a ticket, who is told what); a front end only transports.
Telegram's desk implements :class:`FrontEnd` for the bot, the console and ``gradguide
handoffs``; :class:`bot.handoff.collecting.CollectingFrontEnd` collects what would be said,
for tests. A notice is a message key and its parameters as plain text: the front end renders
it in the reader's language and escapes it for its medium.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff.models import Counsellor, Relayed, Source
from bot.storage.store import Ticket

Record = Callable[[AsyncSession], Awaitable[None]]
"""The service's writes that must land with a message made durable (one transaction)."""


@dataclass(frozen=True, slots=True)
class Notice:
    """Something to tell: a key of ``prompts/*.yaml`` and its parameters (plain text)."""

    key: str
    params: Mapping[str, str | int] = field(default_factory=dict)


class FrontEnd(Protocol):
    """The graduate's channel and the counsellors' desk, as the handoff service sees them.

    Every method is durable or harmless: what cannot be sent now is queued (the outbox) or,
    for a courtesy such as closing a topic, logged. None raises for a delivery failure."""

    async def tell_graduate(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        """A notice for the ticket's graduate, once per ``key``; nothing without a chat."""

    async def ask_rating(self, ticket: Ticket) -> None:
        """Ask the graduate to rate the closed ticket 1–5 (best effort)."""

    async def tell_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        """A notice where counsellors follow the ticket (its topic), once per ``key``."""

    async def alert_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        """A notice where every counsellor sees it (not only the ticket's thread), with a
        way to open the ticket, once per ``key``."""

    async def offer_back_to_bot(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        """A notice for the graduate with a way to leave the queue and go back to the bot,
        once per ``key``."""

    async def close_thread(self, ticket: Ticket) -> None:
        """The ticket's thread at the desk is closed (best effort)."""

    async def relay_reply(
        self, ticket: Ticket, text: str | None, source: Source, by: Counsellor
    ) -> Relayed:
        """A counsellor's message to the graduate, once per ``source``, recorded in the
        transcript with the ticket's first response in the transaction that makes it
        durable (``None`` text: the source message is copied as it is)."""

    async def send_answer(self, ticket: Ticket, text: str, *, key: str, record: Record) -> Relayed:
        """``text`` to the graduate, once per ``key``; ``record`` runs in the transaction
        that makes it durable (``ALREADY`` and ``record`` not run when it was queued
        before)."""

    async def close(self) -> None:
        """Release what the front end holds (a bot client it built)."""
