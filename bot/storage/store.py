"""``Store``: every read and write the Telegram channel makes, as small typed methods.

Each method is one short transaction of its own, or joins the caller's when given
``session=`` (from ``Store.transaction()``). Race-sensitive steps are a single
conditional UPDATE (``... WHERE status = 'queued'``, the winner sees its row come back)
or an INSERT guarded by a unique constraint, so they stay correct across processes on
SQLite and PostgreSQL without in-process locks. Methods return frozen records, never
live ORM objects. Timestamps are timezone-aware UTC; ``clock`` decides "now".

The repository is split by aggregate, one mixin per module, all on ``StoreBase``
(``bot.storage.base``: the database, the clock, the transactions): ``users``,
``conversations`` (and turns), ``tickets``, ``counsellors``, ``relay`` (links),
``outbox``, ``rate_limits``, ``feedback`` (and unanswered questions), ``updates`` (and the
hot path's steps), ``uploads`` and ``stats`` (and retention). The records are in
``bot.storage.records``, the shared SQL helpers in ``bot.storage.sql``, the hot path's
statements in ``bot.storage.hot_path``; this module re-exports what callers import from it.
"""

from __future__ import annotations

from bot.storage.base import StoreBase
from bot.storage.conversations import ConversationsMixin
from bot.storage.counsellors import CounsellorsMixin
from bot.storage.feedback import FeedbackMixin
from bot.storage.hot_path import LAST_SEEN_RESOLUTION
from bot.storage.outbox import MAX_ERROR_CHARS, SEND_LEASE, OutboxMixin
from bot.storage.rate_limits import RateLimitsMixin
from bot.storage.records import (
    MAX_QUESTION_CHARS,
    Begun,
    ConversationRecord,
    CounsellorRecord,
    Direction,
    Escalated,
    Exchange,
    FeedbackKind,
    MessageLink,
    NewTurn,
    OutboxItem,
    Role,
    Send,
    Stats,
    Ticket,
    TicketEvent,
    TurnRecord,
    TurnRole,
    Unanswered,
    UnansweredQuestion,
    UnansweredReason,
    Upload,
    UploadStatus,
    User,
)
from bot.storage.relay import HANDED_TO_OUTBOX, RelayMixin
from bot.storage.sql import Clock, utcnow
from bot.storage.stats import StatsMixin
from bot.storage.tickets import TicketsMixin
from bot.storage.updates import UpdatesMixin
from bot.storage.uploads import UploadsMixin
from bot.storage.users import UsersMixin

__all__ = [
    "HANDED_TO_OUTBOX",
    "LAST_SEEN_RESOLUTION",
    "MAX_ERROR_CHARS",
    "MAX_QUESTION_CHARS",
    "SEND_LEASE",
    "Begun",
    "Clock",
    "ConversationRecord",
    "CounsellorRecord",
    "Direction",
    "Escalated",
    "Exchange",
    "FeedbackKind",
    "MessageLink",
    "NewTurn",
    "OutboxItem",
    "Role",
    "Send",
    "Stats",
    "Store",
    "StoreBase",
    "Ticket",
    "TicketEvent",
    "TurnRecord",
    "TurnRole",
    "Unanswered",
    "UnansweredQuestion",
    "UnansweredReason",
    "Upload",
    "UploadStatus",
    "User",
    "utcnow",
]


class Store(
    UsersMixin,
    ConversationsMixin,
    TicketsMixin,
    CounsellorsMixin,
    RelayMixin,
    OutboxMixin,
    RateLimitsMixin,
    FeedbackMixin,
    UpdatesMixin,
    UploadsMixin,
    StatsMixin,
):
    """The async repository over a ``Database`` (see the module docstring)."""
