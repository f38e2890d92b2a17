"""One front end made of several: the counsellors' desk is one place (Telegram's forum
group), but each graduate is reached on their own channel — Telegram when they have a
Telegram chat, else the terminal they are typing in (``gradguide chat``)."""

from __future__ import annotations

from bot.handoff.models import Counsellor, Relayed, Source
from bot.handoff.ports import FrontEnd, Notice, Record
from bot.storage.store import Store, Ticket


class RoutingFrontEnd:
    def __init__(self, store: Store, desk: FrontEnd, terminal: FrontEnd) -> None:
        self.store = store
        self.desk = desk
        """Where counsellors are told things, and Telegram graduates are reached."""
        self.terminal = terminal
        """Where graduates without a Telegram chat are reached."""

    async def _graduate(self, ticket: Ticket) -> FrontEnd:
        user = await self.store.get_user(ticket.user_id)
        return self.desk if user is not None and user.telegram_id is not None else self.terminal

    async def tell_graduate(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        await (await self._graduate(ticket)).tell_graduate(ticket, notice, key=key)

    async def ask_rating(self, ticket: Ticket) -> None:
        await (await self._graduate(ticket)).ask_rating(ticket)

    async def offer_back_to_bot(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        await (await self._graduate(ticket)).offer_back_to_bot(ticket, notice, key=key)

    async def relay_reply(
        self, ticket: Ticket, text: str | None, source: Source, by: Counsellor
    ) -> Relayed:
        return await (await self._graduate(ticket)).relay_reply(ticket, text, source, by)

    async def send_answer(self, ticket: Ticket, text: str, *, key: str, record: Record) -> Relayed:
        front = await self._graduate(ticket)
        return await front.send_answer(ticket, text, key=key, record=record)

    async def tell_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        await self.desk.tell_counsellors(ticket, notice, key=key)

    async def alert_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        await self.desk.alert_counsellors(ticket, notice, key=key)

    async def close_thread(self, ticket: Ticket) -> None:
        await self.desk.close_thread(ticket)

    async def close(self) -> None:
        await self.desk.close()
        await self.terminal.close()
