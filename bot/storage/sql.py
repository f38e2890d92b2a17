"""The storage package's shared SQL helpers: frozen records from rows, JSON-ready values,
row counts, ``INSERT … ON CONFLICT`` per dialect, the queue's priority order, and what an
outage raises. (``console_store`` and ``erasures`` use them as the ``Store``'s mixins do.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from types import MappingProxyType
from typing import Any, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy import case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.sql import ColumnElement

from bot.handoff.models import PRIORITIES
from bot.privacy import redact
from bot.storage.models import Base, TicketRow

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """The default clock: the current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


_R = TypeVar("_R")


def record(cls: type[_R], row: object) -> _R:
    names = [field.name for field in fields(cast(Any, cls))]
    return cls(**{name: getattr(row, name) for name in names})


def records(cls: type[_R], rows: Iterable[object]) -> list[_R]:
    return [record(cls, row) for row in rows]


def json(value: Any) -> Any:
    """``value`` with datetimes, dates and pydantic models made JSON-serialisable."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(key): json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json(item) for item in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def redacted(value: Any) -> Any:
    """JSON ``value`` with every string redacted: the agent's dialogue state keeps what the
    graduate wrote (its turns, the questions it searched for), stored as the turns are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


def rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


def upsert(dialect: str, table: type[Base]) -> Any:
    """``INSERT … ON CONFLICT`` for the database in use (both dialects spell it alike)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def priority_rank() -> ColumnElement[int]:
    """0 for urgent, 1 for high, 2 for normal: the queue's first sort key."""
    ranks = {priority: rank for rank, priority in enumerate(PRIORITIES)}
    return case(ranks, value=TicketRow.priority, else_=len(PRIORITIES))


OUTAGES = (OperationalError, InterfaceError, PoolTimeoutError, OSError)
"""What a database outage raises; the store turns it into ``StorageError``."""

SYNC: Mapping[str, Any] = MappingProxyType({"synchronize_session": False})
"""Bulk UPDATE/DELETE: the sessions are short-lived, nothing in them needs refreshing."""
