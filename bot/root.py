"""The composition root: the one place that builds the parts and wires a front end into
the channel-free core. ``serve`` (the bot), ``web`` (the console) and ``handoffs`` (the
command line) get their handoff service here; nothing else imports both a channel and the
console.
"""

from __future__ import annotations

from bot.channels.telegram.front import TelegramFrontEnd
from bot.handoff.ports import FrontEnd
from bot.handoff.service import HandoffService
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.store import Clock, Store, utcnow
from bot.web.app import WebServices, build_services


def handoff_service(
    settings: Settings, store: Store, messages: Messages, front: FrontEnd | None = None
) -> HandoffService:
    """The ticket use cases over ``front``; by default Telegram reached from a process
    without the bot (built on first use, queue-only while Telegram is unreachable)."""
    if front is None:
        front = TelegramFrontEnd.lazy(settings, store, messages)
    return HandoffService(settings, store, front)


def web_services(
    settings: Settings, *, kb: KnowledgeBase | None = None, clock: Clock = utcnow
) -> WebServices:
    """The console's services, its handoff service relaying through Telegram."""
    return build_services(
        settings,
        kb=kb,
        clock=clock,
        handoff=lambda store, messages: handoff_service(settings, store, messages),
    )
