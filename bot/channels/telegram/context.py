"""What every Telegram handler and job receives: the services built at start-up, reached
through PTB's typed context (``Context``: ``context.bot_data.services``), and the key that
orders a chat's updates. Its own module so that handlers and ``app`` import it, not each
other."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import CallbackContext, ExtBot

from bot.agent.agent import Agent
from bot.channels.telegram.desk import Desk
from bot.channels.telegram.lease import ChatRenewal
from bot.handoff.service import HandoffService
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.store import ConversationRecord, Store, User

UPDATE_STALE_AFTER = dt.timedelta(minutes=5)
"""An update claimed by a worker that then died is processed again once the chat lease it
held ran out (``GRADGUIDE_CHAT_LEASE_S``, see ``Store.claim_update``); one that never held a
chat lease (no chat, or its worker died waiting for the chat), after this."""


@dataclass(frozen=True)
class Preloaded:
    """What ``once`` read for a graduate's text, in the transaction that claimed it."""

    user: User
    conversation: ConversationRecord
    sent_last_minute: float
    """Their messages in the last minute, this one included (for the rate limit)."""


@dataclass
class Services:
    """Everything the handlers need, built once at start-up."""

    settings: Settings
    kb: KnowledgeBase
    agent: Agent
    store: Store
    messages: Messages
    desk: Desk | None = None
    handoff_service: HandoffService | None = None
    """The ticket use cases, over this bot's desk (``build_application``)."""
    agent_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="agent")
    )
    """The agent is CPU work, kept off the event loop. Several threads: the model and the
    index release the GIL, and questions asked at the same moment are embedded together
    (``QueryBatcher``). One graduate's messages still run one at a time (``locks``)."""
    kb_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="kb-writer")
    )
    """Knowledge-base writes (an admin's upload or removal), one at a time."""
    locks: defaultdict[int, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    """Per-user locks: one message of a graduate at a time (plus DB constraints across
    replicas)."""
    finished: set[int] = field(default_factory=set)
    """Updates already marked done in the transaction that stored their answer."""
    released: set[int] = field(default_factory=set)
    """Updates whose chat lease was handed on in that transaction too."""
    renewals: dict[int, ChatRenewal] = field(default_factory=dict)
    """Per update being processed: the task that renews its chat lease."""
    preloaded: dict[int, Preloaded] = field(default_factory=dict)
    """A text update's user and conversation, read when the update was claimed."""
    in_flight: set[int] = field(default_factory=set)
    """Updates this process claimed and is processing (``jobs.resume_stranded`` leaves
    them alone)."""
    uploads_in_flight: set[int] = field(default_factory=set)
    """Uploads this process is ingesting (``jobs.resume_uploads`` leaves them alone)."""

    @property
    def need_desk(self) -> Desk:
        assert self.desk is not None, "build_application sets the desk"
        return self.desk

    @property
    def handoff(self) -> HandoffService:
        assert self.handoff_service is not None, "build_application sets the handoff service"
        return self.handoff_service


class BotData:
    """``context.bot_data`` of every handler and job (PTB's typed context): the services
    ``build_application`` built, reached without a dictionary lookup or a cast."""

    services: Services

    def __init__(self) -> None:
        self.apologised: OrderedDict[int, None] = OrderedDict()
        """Updates whose graduate was told to try again (``failures.on_error``), newest
        last, bounded there."""


Context = CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]
"""The context every GradGuide handler and job receives."""


def chat_key(update: object) -> tuple[int, int] | None:
    """The chat an update belongs to, with the forum topic (0 outside topics): the unit
    whose updates are processed one at a time, in order."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    message = update.effective_message
    thread = message.message_thread_id if message is not None else None
    return update.effective_chat.id, thread or 0
