"""Telegram as the handoff service's front end (:class:`bot.handoff.ports.FrontEnd`).

The bot passes its own desk. The console and ``gradguide handoffs`` run without the bot:
they use :meth:`TelegramFrontEnd.lazy`, which builds a desk on first use and, when Telegram
cannot be reached (no token, the Bot API down), a desk that only queues — every transition
still happens, and what the graduate or the topic must hear waits in the outbox for the
running bot's outbox job.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import InlineKeyboardMarkup
from telegram.error import NetworkError, TelegramError

from bot.channels.telegram import formatting as fmt
from bot.channels.telegram.check import bot_for
from bot.channels.telegram.desk import Desk, message_payload
from bot.channels.telegram.gateway import DeliveryFailed, Gateway
from bot.handoff.directory import graduate_lang
from bot.handoff.models import Counsellor, Relayed, Source
from bot.handoff.ports import Notice, Record
from bot.kb.models import Lang
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.store import Send, Store, Ticket

logger = logging.getLogger(__name__)


class OfflineGateway(Gateway):
    """A gateway for a process that cannot reach Telegram: every call fails as a passing
    error at once, so each durable send lands in the outbox (and nothing else is tried)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def run(self, what: str, make: Callable[[], Awaitable[Any]]) -> Any:
        raise DeliveryFailed(what, NetworkError(self.reason), permanent=False)

    async def call(
        self,
        method: str,
        payload: dict[str, Any],
        *,
        before_attempt: Callable[[], None] | None = None,
    ) -> Any:
        raise DeliveryFailed(method, NetworkError(self.reason), permanent=False)


class TelegramFrontEnd:
    def __init__(
        self, desk: Callable[[], Awaitable[Desk]], owned: list[Desk] | None = None
    ) -> None:
        self._desk = desk
        self._owned = owned if owned is not None else []
        """Desks this front end built (their bots are shut down by ``close``)."""

    @classmethod
    def of(cls, desk: Desk) -> TelegramFrontEnd:
        """Over the running bot's desk."""

        async def same() -> Desk:
            return desk

        return cls(same)

    @classmethod
    def lazy(cls, settings: Settings, store: Store, messages: Messages) -> TelegramFrontEnd:
        """For processes without the bot: a desk built on first use, queue-only while
        Telegram cannot be reached (tried again on the next use)."""
        built: list[Desk] = []

        async def desk() -> Desk:
            if built:
                return built[0]
            if not settings.telegram_bot_token:
                return Desk(settings, store, OfflineGateway("no bot token"), messages)
            bot = bot_for(settings)
            try:
                await bot.initialize()
            except TelegramError as exc:
                logger.warning("Telegram unreachable, messages wait in the outbox: %s", exc)
                return Desk(settings, store, OfflineGateway(str(exc)), messages)
            built.append(Desk(settings, store, Gateway(bot), messages))
            return built[0]

        return cls(desk, built)

    async def desk(self) -> Desk:
        """The desk messages go through now (queue-only while Telegram is unreachable)."""
        return await self._desk()

    async def close(self) -> None:
        """Shut down the bot a lazy front end built (the running bot's desk is left)."""
        while self._owned:
            await self._owned.pop().gateway.bot.shutdown()

    # -- rendering -------------------------------------------------------------------------

    @staticmethod
    def render(messages: Messages, notice: Notice, lang: Lang) -> str:
        """The notice in ``lang``, its text parameters escaped for Telegram's HTML."""
        params = {k: fmt.escape(v) if isinstance(v, str) else v for k, v in notice.params.items()}
        return messages.get(notice.key, lang, **params)

    async def _graduate(self, desk: Desk, ticket: Ticket) -> tuple[int, Lang] | None:
        user = await desk.store.get_user(ticket.user_id)
        if user is None or user.telegram_id is None:
            return None
        return user.telegram_id, await graduate_lang(desk.store, user)

    # -- FrontEnd --------------------------------------------------------------------------

    async def tell_graduate(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        desk = await self._desk()
        found = await self._graduate(desk, ticket)
        if found is not None:
            chat, lang = found
            await desk.send_or_queue(key, chat, self.render(desk.messages, notice, lang))

    async def ask_rating(self, ticket: Ticket) -> None:
        notice = Notice("tg_rate_prompt")
        await self._with_buttons(ticket, f"rate:{ticket.id}", notice, fmt.rating_keyboard)

    async def tell_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        desk = await self._desk()
        await desk.notify_topic(ticket, key, self.render(desk.messages, notice, desk.group_lang))

    async def alert_counsellors(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        """In the group's general chat, with a link to the ticket's topic."""
        desk = await self._desk()
        if desk.group_id is None:
            return
        linked = Notice(notice.key, {**notice.params, "link": desk.topic_link(ticket)})
        text = self.render(desk.messages, linked, desk.group_lang)
        await desk.send_or_queue(key, desk.group_id, text)

    async def offer_back_to_bot(self, ticket: Ticket, notice: Notice, *, key: str) -> None:
        await self._with_buttons(ticket, key, notice, fmt.back_to_bot_keyboard)

    async def _with_buttons(
        self,
        ticket: Ticket,
        key: str,
        notice: Notice,
        keyboard: Callable[[int, Lang, Messages], InlineKeyboardMarkup],
    ) -> None:
        """A notice for the graduate with the ticket's buttons under it."""
        desk = await self._desk()
        found = await self._graduate(desk, ticket)
        if found is None:
            return
        chat, lang = found
        await desk.send_or_queue(
            key,
            chat,
            self.render(desk.messages, notice, lang),
            reply_markup=keyboard(ticket.id, lang, desk.messages),
        )

    async def close_thread(self, ticket: Ticket) -> None:
        await (await self._desk()).close_topic(ticket)

    async def relay_reply(
        self, ticket: Ticket, text: str | None, source: Source, by: Counsellor
    ) -> Relayed:
        desk = await self._desk()
        found = await self._graduate(desk, ticket)
        if found is None:
            return Relayed.NOWHERE
        return await desk.relay_to_graduate(
            ticket,
            found[0],
            source.chat_id,
            source.message_id,
            text=text,
            counsellor_name=by.name,
            counsellor_id=by.id,
            actor=str(by.actor),
        )

    async def send_answer(self, ticket: Ticket, text: str, *, key: str, record: Record) -> Relayed:
        desk = await self._desk()
        found = await self._graduate(desk, ticket)
        if found is None:
            return Relayed.NOWHERE
        chat = found[0]
        parts = fmt.split_html(fmt.escape(text))
        sends = [
            Send(f"{key}:{i}", "sendMessage", message_payload(chat, part), ticket.id)
            for i, part in enumerate(parts)
        ]
        store = desk.store
        async with store.transaction() as tx:  # decided: durable before the first attempt
            items = await store.queue(sends, lease=desk.send_lease, session=tx)
            if items:
                await record(tx)
        if not items:
            return Relayed.ALREADY
        delivery = await desk.deliver(items)
        if delivery.failed is not None:
            return Relayed.REFUSED if delivery.failed.permanent else Relayed.QUEUED
        return Relayed.QUEUED if delivery.lost else Relayed.SENT
