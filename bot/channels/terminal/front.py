"""The terminal graduate as the handoff service reaches them: every message is an outbox
item (method ``terminal``, key ``terminal:<user id>:…``) that the running ``gradguide chat``
prints and marks sent. Any process may write them — the console, ``gradguide handoffs``, the
Telegram bot when a counsellor answers in the ticket's topic — and none is lost while the
terminal is busy: it prints them on its next look.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

from bot.handoff.directory import graduate_lang
from bot.handoff.models import Counsellor, Relayed, Source
from bot.handoff.ports import FrontEnd, Notice, Record
from bot.handoff.routing import RoutingFrontEnd
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.outbox import TERMINAL
from bot.storage.store import Send, Store, Ticket

METHOD = TERMINAL
NOW = dt.timedelta(0)
"""Terminal items are due at once: no process sends them but the graduate's terminal."""
TAG = re.compile(r"<[^>]+>")


def plain(text: str) -> str:
    """A Telegram HTML message as terminal text: tags dropped, entities read."""
    return html.unescape(TAG.sub("", text))


def key_prefix(user_id: int) -> str:
    """The outbox keys of one terminal graduate's messages."""
    return f"{METHOD}:{user_id}:"


class TerminalFrontEnd:
    def __init__(self, store: Store, messages: Messages, *, names_visible: bool = False) -> None:
        self.store = store
        self.messages = messages
        self.names_visible = names_visible
        """Replies carry the counsellor's name (``GRADGUIDE_COUNSELLOR_NAMES_VISIBLE``)."""

    async def _text(self, ticket: Ticket, notice: Notice) -> str:
        lang = await graduate_lang(self.store, await self.store.get_user(ticket.user_id))
        return plain(self.messages.get(notice.key, lang, **notice.params))

    async def _put(self, ticket: Ticket, key: str, payload: dict[str, Any]) -> None:
        await self.store.enqueue(
            key_prefix(ticket.user_id) + key, METHOD, payload, ticket_id=ticket.id
        )

    async def tell_graduate(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        await self._put(ticket, key, {"text": await self._text(ticket, notice)})

    async def ask_rating(self, ticket: Ticket) -> None:
        text = await self._text(ticket, Notice("chat_rate_prompt"))
        await self._put(ticket, f"rate:{ticket.id}", {"text": text, "rate": ticket.id})

    async def offer_back_to_bot(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        text = (
            await self._text(ticket, notice)
            + "\n"
            + await self._text(ticket, Notice("chat_cancel_hint"))
        )
        await self._put(ticket, key, {"text": text})

    async def relay_reply(
        self, ticket: Ticket, text: str | None, source: Source, by: Counsellor
    ) -> Relayed:
        """Once per source: the item, the transcript's turn and the ticket's first response
        in one transaction (``ALREADY`` when the item was there before)."""
        shown = text if text is not None else "[media]"
        notice = Notice("tg_counsellor_says", {"text": shown})
        if self.names_visible and by.name:
            notice = Notice("tg_counsellor_named", {"name": by.name, "text": shown})
        body = await self._text(ticket, notice)
        key = key_prefix(ticket.user_id) + f"reply:{source.chat_id}:{source.message_id}"
        send = Send(key, METHOD, {"text": body}, ticket.id)
        async with self.store.transaction() as tx:
            if not await self.store.queue([send], lease=NOW, session=tx):
                return Relayed.ALREADY
            await self.store.add_turn(ticket.conversation_id, "counsellor", shown, session=tx)
            await self.store.mark_first_response(ticket.id, session=tx)
            data = {"counsellor": by.id, "message_id": source.message_id}
            await self.store.add_event(
                ticket.id, "message_to_graduate", str(by.actor), data, session=tx
            )
        return Relayed.SENT

    async def send_answer(self, ticket: Ticket, text: str, *, key: str, record: Record) -> Relayed:
        send = Send(key_prefix(ticket.user_id) + key, METHOD, {"text": text}, ticket.id)
        async with self.store.transaction() as tx:
            if not await self.store.queue([send], lease=NOW, session=tx):
                return Relayed.ALREADY
            await record(tx)
        return Relayed.SENT

    # the counsellors' desk is elsewhere (the routing front end sends these there)

    async def tell_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        return None

    async def alert_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        return None

    async def close_thread(self, ticket: Ticket) -> None:
        return None

    async def close(self) -> None:
        return None


def with_terminal(settings: Settings, store: Store, messages: Messages, desk: FrontEnd) -> FrontEnd:
    """``desk`` (Telegram: the counsellors' group and Telegram graduates) with terminal
    graduates reached through the outbox: what the bot, the console and ``gradguide
    handoffs`` each give their handoff service."""
    terminal = TerminalFrontEnd(store, messages, names_visible=settings.counsellor_names_visible)
    return RoutingFrontEnd(store, desk, terminal)
