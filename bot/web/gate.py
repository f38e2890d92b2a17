"""The console's door for request bodies: who may send one, and how big.

FastAPI reads a form (and Starlette spools an uploaded file to a temporary file on disk)
before any dependency runs, so ``guard``'s login check alone would come after a stranger's
upload had been stored. ``BodyGate`` is a pure ASGI middleware in front of the routes: a
request that carries a body is let in only

- on a public path (the login form) with at most ``ANONYMOUS_BODY_BYTES``, or
- with a live console session, with at most the console's cap (``body_limit``).

(A GET, HEAD or OPTIONS request is not asked for a session here: no route reads its body,
and ``guard`` sends a visitor to the login page. Its body is only held to the cap.)

Anything else is answered before one byte of the body is read: 401 without a session,
413 when the declared ``Content-Length`` is over the cap. A body sent without a length
(chunked) is counted as it is read and cut off at the cap: the read that passes it fails,
whatever the route was doing is dropped (a multipart parser closes its temporary files on
that error) and the client gets the same 413.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.settings import Settings

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
ANONYMOUS_BODY_BYTES = 64 * 1024
"""The most a visitor without a session may send (the login form is well under 1 KB)."""
FORM_MARGIN_MB = 8.0
"""Room for the upload form's other fields next to a file of ``max_file_mb``: the pasted
text and the metadata fields (Starlette reads a form field of at most 1 MB) and the
multipart boundaries."""
PUBLIC_BODY_PATHS = frozenset({"/login"})
"""Paths that take a body from someone not logged in."""
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def body_limit(settings: Settings) -> int:
    """The largest body (bytes) a logged-in user may send: ``web_max_body_mb``, else the
    upload limit ``max_file_mb`` plus ``FORM_MARGIN_MB``."""
    megabytes = settings.web_max_body_mb
    if megabytes is None:
        megabytes = settings.max_file_mb + FORM_MARGIN_MB
    return int(megabytes * MIB)


class Refusal(enum.Enum):
    """Why the gate answered instead of the route."""

    NOT_LOGGED_IN = 401
    TOO_LARGE = 413


SignedIn = Callable[[Scope], Awaitable[bool]]
"""Whether the request's session cookie names a live console session."""
Refuse = Callable[[Scope, Refusal, int], Response]
"""The response to a refusal, given the limit that applied."""


class BodyTooLarge(Exception):
    """Raised by the counting ``receive`` once the body passes the limit."""


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")


def _declared_length(headers: Headers) -> int | None:
    """The ``Content-Length`` as a number; a malformed one counts as no length (the body is
    then counted as it arrives; uvicorn itself refuses most malformed lengths)."""
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


class _Counted:
    """``receive`` that counts the body and raises ``BodyTooLarge`` past ``limit``."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.received = 0
        self.exceeded = False

    async def __call__(self) -> Message:
        if self.exceeded:
            raise BodyTooLarge
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                raise BodyTooLarge
        return message


class BodyGate:
    """See the module docstring. ``signed_in`` checks the session (one database read per
    request with a body; ``guard`` checks it again for the route, so a session ended between
    the two reads is still refused, after the body has been read within the cap)."""

    def __init__(self, app: ASGIApp, *, limit: int, signed_in: SignedIn, refuse: Refuse) -> None:
        self.app = app
        self.limit = limit
        self.signed_in = signed_in
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] in BODYLESS_METHODS and not _has_body(headers):
            await self.app(scope, receive, send)
            return
        if scope["method"] in BODYLESS_METHODS:
            limit = self.limit  # no route reads it; ``guard`` answers (a login redirect)
        elif scope["path"] in PUBLIC_BODY_PATHS:
            limit = ANONYMOUS_BODY_BYTES
        elif await self.signed_in(scope):
            limit = self.limit
        else:
            await self._refuse(scope, receive, send, Refusal.NOT_LOGGED_IN, self.limit)
            return
        declared = _declared_length(headers)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, Refusal.TOO_LARGE, limit)
            return
        counted = _Counted(receive, limit)
        started = False

        async def send_unless_cut(message: Message) -> None:
            nonlocal started
            if counted.exceeded and not started:
                return  # the route's answer to a cut-off body: the 413 below replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, send_unless_cut)
        except Exception:
            if not counted.exceeded or started:
                raise
        if counted.exceeded and not started:
            await self._refuse(scope, receive, send, Refusal.TOO_LARGE, limit)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, refusal: Refusal, limit: int
    ) -> None:
        if refusal is Refusal.TOO_LARGE:
            logger.info("a request body over %d bytes refused on %s", limit, scope["path"])
        await self.refuse(scope, refusal, limit)(scope, receive, send)
