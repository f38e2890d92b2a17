"""Every call the bot makes to Telegram goes through the gateway.

Flood control (429, ``retry_after``), server errors (5xx) and timeouts are retried with
exponential backoff; a request Telegram refuses on its merits (400 Bad Request, 403 Forbidden,
401) is not. A call that still fails raises :class:`DeliveryFailed`, and the caller decides
what happens to it. Answers and relays are in the outbox before their first attempt
(``Desk.deliver``): a failure hands them to the outbox job, and a process that dies while
the gateway waits out a 429 leaves them there too, never dropped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from telegram import Bot
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class DeliveryFailed(Exception):
    """Telegram did not take the request after all retries (or refused it outright)."""

    def __init__(self, what: str, cause: TelegramError, *, permanent: bool) -> None:
        super().__init__(f"{what}: {cause}")
        self.cause = cause
        self.permanent = permanent
        """True when retrying cannot help (bad request, bot blocked, bad token)."""


def retry_after_seconds(exc: RetryAfter) -> float:
    """The wait Telegram asked for, in seconds (PTB 22 is moving from int to timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = exc.retry_after
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


def is_thread_missing(exc: BaseException) -> bool:
    """The forum topic was deleted under us."""
    cause = exc.cause if isinstance(exc, DeliveryFailed) else exc
    return isinstance(cause, BadRequest) and "thread not found" in str(cause).lower()


def is_topic_closed(exc: BaseException) -> bool:
    cause = exc.cause if isinstance(exc, DeliveryFailed) else exc
    return isinstance(cause, BadRequest) and "topic_closed" in str(cause).lower()


class Gateway:
    def __init__(
        self,
        bot: Bot,
        *,
        attempts: int = 4,
        base_delay: float = 0.3,
        max_delay: float = 10.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.bot = bot
        self._attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep

    async def run(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        """Await ``make()``, retrying transient failures. ``what`` names it in logs."""
        for attempt in range(1, self._attempts + 1):
            try:
                return await make()
            except RetryAfter as exc:
                delay = min(retry_after_seconds(exc), self._max_delay * 6)
                error: TelegramError = exc
            except (BadRequest, Forbidden, InvalidToken) as exc:
                raise DeliveryFailed(what, exc, permanent=True) from exc
            except (TimedOut, NetworkError) as exc:
                delay = min(self._base_delay * 2 ** (attempt - 1), self._max_delay)
                delay *= 0.5 + random.random()  # spread the retries of many replies
                error = exc
            if attempt == self._attempts:
                raise DeliveryFailed(what, error, permanent=False) from error
            logger.warning(
                "Telegram %s failed (%s), retry %d in %.1fs", what, error, attempt, delay
            )
            await self._sleep(delay)
        raise AssertionError("unreachable")

    async def call(
        self,
        method: str,
        payload: dict[str, Any],
        *,
        before_attempt: Callable[[], None] | None = None,
    ) -> Any:
        """A raw Bot API call (used by the outbox, whose items are stored as method +
        parameters). ``before_attempt`` runs before every attempt and may raise to stop
        (the outbox item is no longer the caller's to send)."""

        async def request() -> Any:
            if before_attempt is not None:
                before_attempt()
            with warnings.catch_warnings():
                # PTB warns that do_api_request has a typed twin; the outbox stores raw calls.
                warnings.simplefilter("ignore", PTBUserWarning)
                return await self.bot.do_api_request(method, api_kwargs=payload)

        return await self.run(method, request)
