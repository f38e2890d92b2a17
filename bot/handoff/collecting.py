"""A front end that collects what the handoff service would say, in memory (as Rasa's
``CollectingOutputChannel``): the service's tests read it, and a front end being built can
start from it. It keeps the contract of :class:`bot.handoff.ports.FrontEnd` where it
matters to the service: a relay is recorded in the transcript once per source, an answer
once per key, in one transaction with the service's own writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.handoff.models import Counsellor, Relayed, Source
from bot.handoff.ports import Notice, Record
from bot.storage.store import Store, Ticket


@dataclass(frozen=True, slots=True)
class Said:
    """One thing said: to whom (``graduate``, ``counsellors`` following the ticket, or
    ``all counsellors``), about which ticket."""

    to: str
    ticket_id: int
    notice: Notice


@dataclass
class CollectingFrontEnd:
    store: Store
    reachable: bool = True
    """False: every message is ``QUEUED`` (as when the channel is down)."""
    said: list[Said] = field(default_factory=list)
    replies: list[tuple[int, str | None, Counsellor]] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)
    closed_threads: list[int] = field(default_factory=list)
    ratings_asked: list[int] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)

    def keys(self, to: str, ticket_id: int | None = None) -> list[str]:
        """The message keys said to ``to`` (about one ticket), in order."""
        return [
            s.notice.key
            for s in self.said
            if s.to == to and (ticket_id is None or s.ticket_id == ticket_id)
        ]

    def _once(self, key: str) -> bool:
        if key in self._keys:
            return False
        self._keys.add(key)
        return True

    async def tell_graduate(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        if self._once(key):
            self.said.append(Said("graduate", ticket.id, notice))

    async def ask_rating(self, ticket: Ticket) -> None:
        self.ratings_asked.append(ticket.id)

    async def tell_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        if self._once(key):
            self.said.append(Said("counsellors", ticket.id, notice))

    async def alert_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        if self._once(key):
            self.said.append(Said("all counsellors", ticket.id, notice))

    async def offer_back_to_bot(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        if self._once(key):
            self.said.append(Said("graduate", ticket.id, notice))

    async def close_thread(self, ticket: Ticket) -> None:
        self.closed_threads.append(ticket.id)

    async def relay_reply(
        self, ticket: Ticket, text: str | None, source: Source, by: Counsellor
    ) -> Relayed:
        if not self._once(f"reply:{source.chat_id}:{source.message_id}"):
            return Relayed.ALREADY
        async with self.store.transaction() as tx:
            await self.store.add_turn(
                ticket.conversation_id, "counsellor", text or "[media]", session=tx
            )
            await self.store.mark_first_response(ticket.id, session=tx)
        self.replies.append((ticket.id, text, by))
        return Relayed.SENT if self.reachable else Relayed.QUEUED

    async def send_answer(self, ticket: Ticket, text: str, *, key: str, record: Record) -> Relayed:
        if not self._once(key):
            return Relayed.ALREADY
        async with self.store.transaction() as tx:
            await record(tx)
        self.answers.append((ticket.id, text))
        return Relayed.SENT if self.reachable else Relayed.QUEUED

    async def close(self) -> None:
        return None
