"""The python-telegram-bot application: built from settings, handlers per role, jobs.

``build_application(services)`` wires the handlers; ``serve(settings)`` is
``gradguide serve`` (long polling, or a webhook when ``GRADGUIDE_WEBHOOK_URL`` is set).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    ContextTypes,
    TypeHandler,
)

from bot.channels.telegram import admins, counsellors, failures, graduates, jobs
from bot.channels.telegram.check import REJECTED_TOKEN, STOPPING_AREAS, check_telegram
from bot.channels.telegram.context import (
    UPDATE_STALE_AFTER,
    BotData,
    Context,
    Preloaded,
    Services,
    chat_key,
)
from bot.channels.telegram.desk import Desk, UpdateInProgress, current_update
from bot.channels.telegram.gateway import Gateway
from bot.channels.telegram.lease import ChatRenewal
from bot.check import Status, check_console, check_settings
from bot.errors import StorageError, TelegramConfigError, UpdateNotClaimed
from bot.handoff.service import HandoffService
from bot.kb.models import Lang
from bot.settings import Settings
from bot.storage.db import Database

logger = logging.getLogger(__name__)


class PerChatOrder(BaseUpdateProcessor):
    """Updates run concurrently, but those of one chat (one topic in the counsellor group)
    run in the order they came: "reply, then /resolve" never turns into "resolve, then
    reply". This orders a replica's own updates; the chat lease in the database
    (``Store.lease_chat``, taken in ``once``) does the same across replicas."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[tuple[int, int], asyncio.Lock] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = chat_key(update) or (0, 0)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                await coroutine
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


HandoffFactory = Callable[[Desk], HandoffService]
"""Builds the bot's handoff service over its desk (the composition root's ``bot_handoff``)."""


def build_application(services: Services, *, handoff: HandoffFactory) -> Application:  # type: ignore[type-arg]
    """The bot's Application over ``services``: handlers, jobs and the desk; ``handoff``
    gets the desk and returns the ticket use cases the handlers call."""
    settings = services.settings
    if not settings.telegram_bot_token:
        raise TelegramConfigError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and export its token"
        )
    api = settings.telegram_api_url.rstrip("/")
    application = (
        Application.builder()
        .token(settings.telegram_bot_token)
        .context_types(ContextTypes(bot_data=BotData))
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .concurrent_updates(PerChatOrder(32))
        .connect_timeout(10)
        .read_timeout(15)
        .write_timeout(15)
        .pool_timeout(10)
        .connection_pool_size(64)
        .post_init(_command_menu)
        .build()
    )
    services.desk = Desk(settings, services.store, Gateway(application.bot), services.messages)
    services.handoff_service = handoff(services.desk)
    application.bot_data.services = services

    async def once(update: Update, context: Context) -> None:
        """Each update is processed once, even when a webhook is replayed, and a chat's
        updates one at a time on whichever replica receives them. A graduate's text also
        has its user and conversation read, and is counted for the rate limit, in the
        same transaction. In long polling the update itself is kept with its claim until it
        is done: Telegram will not deliver it again, so if this process dies, the next one
        resumes it (``jobs.resume_stranded``)."""
        current_update.set(None)
        store = services.store
        message, sender = update.message, update.effective_user
        private_text = (
            message is not None
            and message.text is not None
            and message.chat.type == "private"
            and sender is not None
        )
        chat = chat_key(update)
        lease = dt.timedelta(seconds=settings.chat_lease_s)
        delay = 0.01
        update_id = update.update_id
        graduate = (sender.id, sender.first_name) if private_text and sender else None
        polling = context.application.updater is not None and context.application.updater.running
        try:
            begun = await store.begin_update(
                update_id,
                chat,
                lease,
                graduate=graduate,
                count=settings.rate_limit_per_minute > 0,
                payload=update.to_dict() if polling else None,
            )
            if begun is not None:  # a new update: most of them
                claimed, ours = True, begun.ours
                if begun.graduate is not None:
                    user, conversation = begun.graduate
                    services.preloaded[update_id] = Preloaded(
                        user, conversation, begun.sent_last_minute
                    )
            else:  # seen before: a replayed webhook, or a retry after a replica died
                async with store.transaction() as tx:
                    now = store.now()
                    claimed = await store.claim_update(
                        update_id, now, UPDATE_STALE_AFTER, chat_id=chat and chat[0], session=tx
                    )
                    ours = claimed and (
                        chat is None
                        or await store.lease_chat(chat, update_id, now, lease, session=tx)
                    )
                    if ours and private_text:
                        await _preload(services, update, tx)
            if not claimed:
                raise ApplicationHandlerStop
            while not ours:  # another replica is processing this chat's previous update
                assert chat is not None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
                async with store.transaction() as tx:
                    ours = await store.lease_chat(chat, update_id, store.now(), lease, session=tx)
                    if ours and private_text:
                        await _preload(services, update, tx)
        except (StorageError, SQLAlchemyError, OSError) as exc:
            # a connection dropped mid-statement surfaces as a plain DBAPIError
            raise UpdateNotClaimed(f"update {update_id} not claimed: {exc}") from exc
        services.in_flight.add(update_id)
        current_update.set(UpdateInProgress(update_id))  # for the desk's relays
        if chat is not None:
            services.renewals[update_id] = ChatRenewal(store, chat, update_id, lease)

    async def done(update: Update, context: Context) -> None:
        services.preloaded.pop(update.update_id, None)
        services.in_flight.discard(update.update_id)
        renewal = services.renewals.pop(update.update_id, None)
        if renewal is not None:
            await renewal.stop()
        update_id = update.update_id
        scope = current_update.get()
        finished = update_id in services.finished or (  # marked with the answer or relay
            scope is not None and scope.update_id == update_id and scope.finished
        )
        released = update_id in services.released
        services.finished.discard(update_id)
        services.released.discard(update_id)
        chat = None if released else chat_key(update)
        await services.store.end_update(update_id, chat, finish=not finished)

    application.add_handler(TypeHandler(Update, once), group=-1)
    admins.register(application, services)
    counsellors.register(application, services)
    graduates.register(application, services)
    application.add_handler(TypeHandler(Update, done), group=99)
    application.add_error_handler(failures.on_error)
    jobs.schedule(application, services)
    return application


async def _preload(services: Services, update: Update, tx: AsyncSession) -> None:
    """Read a graduate's user and conversation (and count the message for the rate limit)
    in the transaction that claimed the update."""
    store = services.store
    sender = update.effective_user
    assert sender is not None
    user, conversation = await store.load_graduate(sender.id, sender.first_name, session=tx)
    sent = 0.0
    if services.settings.rate_limit_per_minute > 0:
        sent = await store.count_message(user.id, store.now(), session=tx)
    services.preloaded[update.update_id] = Preloaded(user, conversation, sent)


async def _command_menu(application: Application) -> None:  # type: ignore[type-arg]
    """The graduates' command menu in Telegram, in Chinese (default) and English."""
    services = application.bot_data.services
    menus: tuple[tuple[Lang, str | None], ...] = (("zh", None), ("en", "en"))
    for lang, code in menus:
        lines = services.messages.get("tg_command_menu", lang).splitlines()
        commands = [tuple(line.split(" ", 1)) for line in lines if " " in line]
        try:
            await application.bot.set_my_commands(
                [BotCommand(name, text) for name, text in commands], language_code=code
            )
        except TelegramError as exc:  # a menu is a convenience: never stop start-up for it
            logger.warning("command menu not set: %s", exc)


def prepare(settings: Settings) -> None:
    """Before the bot's parts are built: quiet the job queue's logs, the faster event loop,
    one BLAS thread, and ``gradguide check`` (which stops a start-up that cannot work)."""
    if not settings.telegram_bot_token:
        raise TelegramConfigError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and export its token"
        )
    # APScheduler (PTB's job queue) logs two INFO lines for every run of every job: the
    # outbox job alone runs every 2 s. Its warnings (a job missed or still running) stay.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    os.environ.setdefault("PTB_TIMEDELTA", "1")  # PTB 22: durations as timedelta, no warnings
    _faster_event_loop()
    _one_blas_thread()
    asyncio.run(_check_set_up(settings))


def warm_up(services: Services) -> None:
    """Answer a few questions and migrate the database, so the first graduate waits for
    neither."""
    started = time.perf_counter()
    answered = services.agent.warm_up(services.agent_pool)
    logger.info("warmed up: %d answers in %.1f s", answered, time.perf_counter() - started)
    asyncio.run(_migrate(services.store.db))


def run(application: Application, settings: Settings) -> None:  # type: ignore[type-arg]
    """Poll, or listen for the webhook, until stopped."""
    services = application.bot_data.services
    try:
        if settings.webhook_url:
            # our own receiver (webhook.py): it answers Telegram only once an update is
            # processed, so one that fails to be claimed, or whose replica dies, is
            # delivered again (PTB's run_webhook answers 200 before processing)
            from bot.channels.telegram.webhook import run_webhook

            asyncio.run(run_webhook(application, settings, services.store.update_status))
        else:
            application.run_polling(allowed_updates=Update.ALL_TYPES)
    except InvalidToken as exc:
        raise TelegramConfigError(REJECTED_TOKEN) from exc


async def _migrate(db: Database) -> None:
    """Migrate, then close the connections: they belong to this event loop, and the bot
    runs in another (a pooled PostgreSQL connection would fail on first use there)."""
    await db.migrate()
    await db.dispose()


def _one_blas_thread() -> None:
    """A bot answers many small questions at once on several threads: BLAS's own worker
    threads only add overhead there, and OpenBLAS's spin while they wait for work (measured:
    a third of a core, idle, on the 2-core machine). Ingestion's large batches ask for
    more threads for their own duration (the embedder's ``threads``)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _faster_event_loop() -> None:
    """uvloop when it is installed (``pip install 'gradguide[fast]'``): a faster event loop
    for the same code."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _check_set_up(settings: Settings) -> None:
    """``gradguide check`` before anything else (but the index, which start-up builds or
    opens next, and the database, which it migrates): a wrong token, an unreachable API, a
    counsellor group tickets cannot reach (missing, not a forum, the bot without the right
    to manage topics) or an unusable webhook stop the start-up with the fix; anything else
    is logged (the token is never echoed)."""
    stops = []
    findings = [*check_settings(settings), check_console(settings)]
    for finding in [*findings, *await check_telegram(settings)]:
        if finding.status is Status.OK:
            continue
        line = f"{finding.what} ({finding.fix})" if finding.fix else finding.what
        if finding.status is Status.ERROR and finding.area in STOPPING_AREAS:
            stops.append(line)
        else:
            logger.warning("set-up: %s: %s", finding.area, line)
    if stops:
        raise TelegramConfigError("; ".join(stops))
