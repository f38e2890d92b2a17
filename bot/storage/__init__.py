"""Persistence for the Telegram channel: users, conversations, tickets, relay, outbox.

``Database`` owns the engine and the Alembic migrations; ``Store`` is the repository the
bot calls. Both are built explicitly (``Database.from_settings(settings)``), never at
import time.
"""

from bot.errors import StorageError
from bot.storage.db import Database, alembic_config, mask_url
from bot.storage.store import (
    ConversationRecord,
    Escalated,
    Exchange,
    MessageLink,
    NewTurn,
    OutboxItem,
    Send,
    Stats,
    Store,
    Ticket,
    TicketEvent,
    TurnRecord,
    Unanswered,
    UnansweredQuestion,
    Upload,
    User,
    utcnow,
)

__all__ = [
    "ConversationRecord",
    "Database",
    "Escalated",
    "Exchange",
    "MessageLink",
    "NewTurn",
    "OutboxItem",
    "Send",
    "Stats",
    "StorageError",
    "Store",
    "Ticket",
    "TicketEvent",
    "TurnRecord",
    "Unanswered",
    "UnansweredQuestion",
    "Upload",
    "User",
    "alembic_config",
    "mask_url",
    "utcnow",
]
