"""The composition root: the one place that builds the parts and wires a front end into
the channel-free core. ``serve`` (the bot: knowledge base, store, agent, handoff service
and the Telegram application), ``web`` (the console), ``chat`` (the terminal) and
``handoffs`` (the command line) are put together here; nothing else imports both a
channel and the console.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from rich.console import Console
from telegram.ext import Application

from bot.agent.agent import Agent
from bot.channels.telegram import app as telegram_app
from bot.channels.telegram.context import Services
from bot.channels.telegram.desk import Desk
from bot.channels.telegram.front import TelegramFrontEnd
from bot.channels.terminal.chat import TerminalChat, stdin_lines
from bot.channels.terminal.front import with_terminal
from bot.handoff.ports import FrontEnd
from bot.handoff.service import HandoffService
from bot.kb.service import KnowledgeBase
from bot.privacy import install_log_redaction
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.store import Clock, Store, utcnow

if TYPE_CHECKING:  # the console's stack is imported by `gradguide web` only
    from bot.web.app import WebServices


def handoff_service(
    settings: Settings, store: Store, messages: Messages, front: FrontEnd | None = None
) -> HandoffService:
    """The ticket use cases over ``front``; by default Telegram reached from a process
    without the bot (built on first use, queue-only while Telegram is unreachable), and
    terminal graduates through the outbox."""
    if front is None:
        front = with_terminal(
            settings, store, messages, TelegramFrontEnd.lazy(settings, store, messages)
        )
    return HandoffService(settings, store, front)


def bot_services(settings: Settings) -> Services:
    """What the bot's handlers use: the knowledge base (built if it is not), the store,
    the agent and its threads, the messages."""
    install_log_redaction()
    kb = KnowledgeBase.open(settings)
    kb.ensure_built()
    store = Store(Database.from_settings(settings))
    messages = Messages.load()
    return Services(
        settings=settings,
        kb=kb,
        agent=Agent(kb, settings, messages),
        store=store,
        messages=messages,
        agent_pool=ThreadPoolExecutor(settings.agent_threads, thread_name_prefix="agent"),
    )


def bot_handoff(services: Services) -> Callable[[Desk], HandoffService]:
    """The bot's handoff service over its own desk; terminal graduates through the
    outbox."""

    def build(desk: Desk) -> HandoffService:
        settings, store, messages = services.settings, services.store, services.messages
        front = with_terminal(settings, store, messages, TelegramFrontEnd.of(desk))
        return handoff_service(settings, store, messages, front)

    return build


def bot_application(services: Services) -> Application:  # type: ignore[type-arg]
    """The Telegram bot over ``services``, its handoff service built here."""
    return telegram_app.build_application(services, handoff=bot_handoff(services))


def serve(settings: Settings) -> None:
    """``gradguide serve``: check the set-up, build the parts, migrate, then poll or listen
    for the webhook."""
    telegram_app.prepare(settings)
    services = bot_services(settings)
    telegram_app.warm_up(services)
    telegram_app.run(bot_application(services), settings)


def web_services(
    settings: Settings, *, kb: KnowledgeBase | None = None, clock: Clock = utcnow
) -> WebServices:
    """The console's services, its handoff service relaying through Telegram."""
    from bot.web.app import build_services

    return build_services(
        settings,
        kb=kb,
        clock=clock,
        handoff=lambda store, messages: handoff_service(settings, store, messages),
    )


def chat(settings: Settings, agent: Agent, out: Console) -> int:
    """``gradguide chat``: the terminal channel on the configured database (migrated on
    start), its handoffs reaching counsellors like any other."""

    async def main() -> int:
        database = Database.from_settings(settings)
        try:
            await database.migrate()
            store = Store(database)
            messages = Messages.load()
            service = handoff_service(settings, store, messages)
            terminal = TerminalChat(store, agent, service, messages, out)
            try:
                return await terminal.run(stdin_lines(sys.stdin.isatty()))
            finally:
                await service.close()
        finally:
            await database.dispose()

    return asyncio.run(main())
