"""The webhook receiver of ``gradguide serve`` (webhook mode), in place of
python-telegram-bot's ``run_webhook``.

PTB's built-in server answers Telegram 200 as soon as an update is queued in memory, so an
update that then fails (the database is down) or whose replica dies is never delivered
again. This one answers only when the update is done with:

- **200**: the update was processed here (the handlers ran, whatever they said to the
  graduate), or it had already been processed (a replay);
- **503**: it could not be claimed — the database is down (``UpdateNotClaimed``), or
  another replica holds its claim and is still processing it. Before answering 503 the
  update is tried again here for ``GRADGUIDE_WEBHOOK_RETRY_S`` (a database restart is
  absorbed without Telegram's retry pauses); then Telegram delivers it again, to this
  replica or another. A replica that died mid-update holds its claim only until its chat
  lease runs out (``Store.claim_update``);
- **403**: the ``X-Telegram-Bot-Api-Secret-Token`` header is missing or wrong (as PTB);
- **400**: the body is not JSON, or not an update; **415**: not ``application/json``;
  **404** / **405**: another path, or not a POST.

Updates go through the application's update processor (``PerChatOrder``: one chat's
updates in order, at most its concurrency limit at once), exactly as PTB's own update
fetcher does (``Application.__process_update_wrapper``).

Telling the graduate: an update that cannot be claimed is retried, so the graduate is not
sent an apology for every try. The error handler asks :func:`unclaimed_update`, which
says to tell them only on the last try of Telegram's *first* delivery of a new message
(one sent less than ``retry_s`` ago: every redelivery comes at least ``retry_s`` after the
first one began). Redeliveries, edits and button presses get no apology; each is
processed once the database is back. In long polling an unclaimed update is lost, and the
graduate is told at once, as before.

Stopping (SIGTERM, SIGINT): no new connection is accepted and new requests get 503, the
updates being processed finish (an update waiting to be tried again gets 503 at once),
then the application stops (jobs) and shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import tornado.web
from telegram import Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, ExtBot, TypeHandler
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from bot.errors import TelegramConfigError
from bot.settings import Settings

if TYPE_CHECKING:  # app.py imports this module
    from bot.channels.telegram.context import Context

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PROCESSED_GROUP = 1_000
"""The handler group of the marker that says an update got through every handler (after
``done``, group 99). ``once`` stops an update it did not claim before any group runs, and
the error handler one that could not be claimed: no other handler may raise
``ApplicationHandlerStop``, or its update would look refused (503 until it is done)."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Far above any update (a message is at most 4096 characters plus entities)."""
STOP_GRACE_S = 25.0
"""How long stopping waits for the updates being processed (systemd's default stop
timeout is 90 s; docs/deploy.md's unit has 30 s)."""

UpdateStatus = Callable[[int], Awaitable[str | None]]
"""``Store.update_status``: 'processing', 'done' or None."""


@dataclass
class _Delivery:
    """One webhook request being processed (in the task that processes it)."""

    update_id: int
    fresh: bool
    """A new message, delivered for the first time (see the module docs)."""
    final: bool = False
    """The last try before 503."""
    processed: bool = False
    unclaimed: bool = False


_delivery: ContextVar[_Delivery | None] = ContextVar("gradguide_webhook_delivery", default=None)


class Unclaimed(NamedTuple):
    """What the error handler should do about an update that could not be claimed."""

    tell: bool
    """Tell the graduate now."""
    later: bool
    """The update will be processed later: tried again here, or delivered again by
    Telegram (webhook mode); False in long polling, where it is lost."""
    final: bool
    """No more tries here: the webhook answers 503 (or the update is lost)."""


def unclaimed_update(update: object) -> Unclaimed:
    """For the error handler, on ``UpdateNotClaimed``: record it for the webhook delivery
    being processed (which then answers 503 unless a later try claims it)."""
    delivery = _delivery.get()
    if delivery is None or not isinstance(update, Update) or delivery.update_id != update.update_id:
        return Unclaimed(tell=True, later=False, final=True)  # long polling: lost
    delivery.unclaimed = True
    return Unclaimed(tell=delivery.final and delivery.fresh, later=True, final=delivery.final)


async def _processed(update: Update, context: Context) -> None:
    delivery = _delivery.get()
    if delivery is not None and delivery.update_id == update.update_id:
        delivery.processed = True


def _same_secret(given: str | None, secret: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


class WebhookReceiver:
    """Telegram's webhook for one application: ``await start(listen, port)``, ``await
    stop()``. ``handle`` is the whole HTTP contract, for tests without a socket."""

    def __init__(
        self,
        application: Application,  # type: ignore[type-arg]
        *,
        path: str,
        secret: str | None,
        update_status: UpdateStatus,
        retry_s: float = 5.0,
    ) -> None:
        self.application = application
        self.path = "/" + path.strip("/")
        self.secret = secret or None
        self.update_status = update_status
        self.retry_s = retry_s
        self.port: int | None = None
        self._server: HTTPServer | None = None
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        application.add_handler(TypeHandler(Update, _processed), group=PROCESSED_GROUP)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def start(self, listen: str, port: int) -> int:
        """Listen (``port`` 0: any free port); returns the port."""
        app = tornado.web.Application(
            [(rf"{self.path}/?", _TelegramHandler, {"receiver": self})],
            log_function=lambda handler: None,  # no access log: our own lines
        )
        server = HTTPServer(app, max_body_size=MAX_BODY_BYTES)
        sockets = bind_sockets(port, address=listen, family=socket.AF_UNSPEC)
        server.add_sockets(sockets)
        self._server = server
        self.port = int(sockets[0].getsockname()[1])
        logger.info("webhook listening on %s:%d%s", listen, self.port, self.path)
        return self.port

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop accepting, let the updates being processed finish (at most ``grace_s``),
        then close every connection."""
        self._stopping = True
        self._stop_event.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
        except TimeoutError:
            logger.warning("webhook stopped with %d updates still in process", self._in_flight)
        await server.close_all_connections()

    async def handle(self, secret: str | None, content_type: str | None, body: bytes) -> int:
        """One POST: its HTTP status, once the update is done with."""
        if self.secret is not None and not _same_secret(secret, self.secret):
            logger.debug("webhook: a request without the right secret was refused")
            return 403
        if not _is_json(content_type):
            return 415
        if self._stopping:
            return 503
        try:
            data = json.loads(body)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            logger.warning("webhook: a body that is not JSON was refused (400)")
            return 400
        try:
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:  # anything in an untrusted body
            logger.warning("webhook: a body that is not an update was refused (400): %s", exc)
            return 400
        bot = self.application.bot
        if isinstance(bot, ExtBot):
            bot.insert_callback_data(update)
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._deliver(update)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def _fresh(self, update: Update) -> bool:
        message = update.message
        if message is None:
            return False
        age = (dt.datetime.now(dt.UTC) - message.date).total_seconds()
        return age < self.retry_s

    async def _deliver(self, update: Update) -> int:
        loop = asyncio.get_running_loop()
        delivery = _Delivery(update.update_id, fresh=self._fresh(update))
        token = _delivery.set(delivery)
        try:
            deadline = loop.time() + self.retry_s
            pause = 0.1
            while True:
                delivery.final = self._stopping or loop.time() >= deadline
                delivery.processed = delivery.unclaimed = False
                processor = self.application.update_processor
                await processor.process_update(update, self.application.process_update(update))
                if delivery.processed:
                    return 200
                if not delivery.unclaimed and not await self._still_processing(update):
                    return 200  # a duplicate of an update already done
                if delivery.final:
                    logger.info("webhook: update %d not processed yet (503)", update.update_id)
                    return 503
                await self._pause(min(pause, max(deadline - loop.time(), 0.0)))
                pause = min(pause * 2, 1.0)
        finally:
            _delivery.reset(token)

    async def _still_processing(self, update: Update) -> bool:
        """``once`` refused the claim: is another worker still processing the update?"""
        try:
            return await self.update_status(update.update_id) == "processing"
        except Exception as exc:  # the database went away: try again
            logger.info("webhook: status of update %d unknown: %s", update.update_id, exc)
            return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)


class _TelegramHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("POST",)

    def initialize(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver

    async def post(self) -> None:
        headers = self.request.headers
        status = await self.receiver.handle(
            headers.get(SECRET_HEADER), headers.get("Content-Type"), self.request.body
        )
        self.set_status(status)
        self.finish()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish()  # a status, never a page or a traceback


async def run_webhook(
    application: Application,  # type: ignore[type-arg]
    settings: Settings,
    update_status: UpdateStatus,
) -> None:
    """The application's whole life in webhook mode, until SIGTERM or SIGINT."""
    assert settings.webhook_url, "webhook mode needs GRADGUIDE_WEBHOOK_URL"
    path = settings.webhook_url.rstrip("/").rsplit("/", 1)[-1]
    receiver = WebhookReceiver(
        application,
        path=path,
        secret=settings.webhook_secret,
        update_status=update_status,
        retry_s=settings.webhook_retry_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await application.start()
        try:
            await receiver.start(settings.webhook_listen, settings.webhook_port)
            try:
                await _set_webhook(application, settings)
                await stop.wait()
                logger.info("stopping: finishing %d updates", receiver.in_flight)
            finally:
                await receiver.stop()
        finally:
            await application.stop()
            if application.post_stop is not None:
                await application.post_stop(application)
    finally:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _set_webhook(application: Application, settings: Settings) -> None:  # type: ignore[type-arg]
    assert settings.webhook_url
    try:
        await application.bot.set_webhook(
            url=settings.webhook_url,
            secret_token=settings.webhook_secret,
            allowed_updates=Update.ALL_TYPES,
            max_connections=settings.webhook_max_connections,
        )
    except InvalidToken:
        raise
    except TelegramError as exc:
        raise TelegramConfigError(
            f"Telegram refused the webhook {settings.webhook_url}: {exc}"
        ) from None
