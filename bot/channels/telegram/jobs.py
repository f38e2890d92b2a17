"""Background jobs: the outbox (what a process queued and did not send — Telegram kept
failing, or the process died — sent until delivered), stranded updates (long polling: an
update a dead process was processing, processed again), and the SLA clock (remind the
counsellor group of unclaimed tickets, tell a waiting graduate, offer the way out after a
long wait). Each step is a conditional update in the database, so with several replicas
each reminder is sent once."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.agent.curated import parse_cards
from bot.channels.telegram.admins import ingest_upload
from bot.channels.telegram.context import UPDATE_STALE_AFTER, Context, Services
from bot.channels.telegram.forget import ERASE_EVERY_S, erase_due, record_copy
from bot.kb.models import Lang
from bot.storage.console_store import ConsoleStore
from bot.storage.erasures import Erasures

logger = logging.getLogger(__name__)

OUTBOX_EVERY_S = 2.0
RETENTION_EVERY_S = 3600.0
CURATED_EVERY_S = 60.0
"""An admin's approval in the web console reaches the bot within this long."""


def schedule(application: Application, services: Services) -> None:  # type: ignore[type-arg]
    queue = application.job_queue
    if queue is None:  # python-telegram-bot without the job-queue extra
        logger.warning("no job queue: outbox retries and SLA reminders are off")
        return
    queue.run_repeating(drain_outbox, interval=OUTBOX_EVERY_S, first=1.0, name="outbox")
    queue.run_repeating(erase_copies, interval=ERASE_EVERY_S, first=2.0, name="erasures")
    # a stranded update is found once its chat lease has run out
    every = max(1.0, min(services.settings.chat_lease_s / 2, 15.0))
    queue.run_repeating(resume_stranded, interval=every, first=1.0, name="stranded")
    queue.run_repeating(check_sla, interval=services.settings.sla_check_s, first=5.0, name="sla")
    queue.run_repeating(
        resume_uploads,
        interval=300.0,
        first=2.0,
        name="uploads",
        data=services.store.now(),  # this process's start: older uploads were cut off
    )
    queue.run_repeating(retention, interval=RETENTION_EVERY_S, first=60.0, name="retention")
    queue.run_repeating(refresh_curated, interval=CURATED_EVERY_S, first=0.0, name="curated")


async def drain_outbox(context: Context) -> None:
    await deliver_due(context.bot_data.services)


async def deliver_due(s: Services) -> int:
    """Send what is due in the outbox (each item leased to this process while it sends
    it: ``Store.due``, ``Desk.send_queued``); returns how many were delivered. Messages to
    one chat keep their order: after one fails, the later ones wait behind it."""
    store, desk = s.store, s.need_desk
    delivered = 0
    behind: dict[Any, dt.datetime] = {}
    """Chats whose earlier message failed in this run: when it is tried again."""
    for item in await store.due(store.now(), 20, lease=desk.send_lease):
        chat = item.payload.get("chat_id")
        if chat in behind:
            await store.postpone([item.id], behind[chat])
            continue
        delivery = await desk.send_queued([item])
        if delivery.failed is not None:
            retry_at = await desk.hand_over([item], delivery.failed)
            if retry_at is not None:
                behind[chat] = retry_at
            continue
        if delivery.lost:
            continue
        await record_copy(s, item, delivery.message_id)  # so that /forget finds the copy
        if item.ticket_id is not None:  # the audit trail shows the late delivery too
            await store.add_event(
                item.ticket_id,
                "outbox_delivered",
                "bot",
                {"method": item.method, "attempts": item.attempts + 1},
            )
        delivered += 1
    return delivered


async def erase_copies(context: Context) -> None:
    """What /forget could not delete in Telegram at once (``forget.erase_due``)."""
    await erase_due(context.bot_data.services)


async def resume_stranded(context: Context) -> int:
    """Long polling: an update that a process claimed and did not finish before it died is
    processed again (Telegram will not deliver it again: it was confirmed when it was
    fetched). Found once the chat lease it held has run out (``GRADGUIDE_CHAT_LEASE_S``),
    or 5 minutes after its claim without one; ``once`` takes it over (``claim_update``:
    one process does). What its process had decided is in the outbox and is not sent again
    (``Desk``); an update whose graduate was already told to try again (the database failed
    under it) is only marked done. In webhook mode Telegram delivers an update that was not
    answered 200 again, so nothing is done here. Returns how many were resumed."""
    application = context.application
    updater = application.updater
    if updater is None or not updater.running:
        return 0
    s = context.bot_data.services
    store = s.store
    told = application.bot_data.apologised
    resumed = 0
    for update_id, payload in await store.stranded_updates(store.now(), UPDATE_STALE_AFTER):
        if update_id in s.in_flight:
            continue  # this process is on it (its renewals failed for a while)
        if update_id in told:
            await store.finish_update(update_id)
            continue
        logger.warning("update %d, left unfinished by a process that stopped: resumed", update_id)
        await application.update_queue.put(Update.de_json(payload, application.bot))
        resumed += 1
    return resumed


async def check_sla(context: Context) -> None:
    await run_sla(context.bot_data.services)


async def run_sla(s: Services) -> None:
    """The handoff service's sweep (reminders, long waits, the offer to go back)."""
    await s.handoff.sweep()


async def retention(context: Context) -> None:
    await apply_retention(context.bot_data.services)


async def apply_retention(s: Services) -> dict[str, int]:
    """Delete what graduates wrote after ``GRADGUIDE_RETENTION_DAYS``, and the bot's own
    bookkeeping once it is no longer needed (delivered outbox items after a day, given-up
    ones after a week, finished updates, rate-limit counts, finished erasures after a
    month). Every replica may run it: deleting twice is harmless."""
    store = s.store
    now = store.now()
    removed: dict[str, int] = {}
    if s.settings.retention_days > 0:
        cutoff = now - dt.timedelta(days=s.settings.retention_days)
        removed.update(await store.delete_transcripts_older_than(cutoff))
    # every answer and relay passes through the outbox: delivered ones go after a day,
    # the ones given up on after a week (for the logs' story)
    sent = await store.prune_outbox(now - dt.timedelta(days=1), statuses=("sent",))
    removed["outbox"] = sent + await store.prune_outbox(now - dt.timedelta(days=7))
    removed["updates"] = await store.prune_updates(now - dt.timedelta(days=2))
    removed["rate_buckets"] = await store.prune_rate_buckets(now - dt.timedelta(minutes=2))
    # finished erasures (no personal data) stay a month, for the logs' story
    removed["erasures"] = await Erasures(store).prune(now - dt.timedelta(days=30))
    if any(removed.values()):
        logger.info("retention: %s", removed)
    return removed


async def refresh_curated(context: Context) -> None:
    await load_curated(context.bot_data.services)


async def load_curated(s: Services) -> int:
    """Give the agent the curated answers approved in the web console (as answer cards);
    how many are in use."""
    cards = parse_cards(await ConsoleStore(s.store).approved_cards())
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(s.agent_pool, s.agent.use_curated, cards)  # encodes


UPLOAD_STALE_S = 600.0
"""An upload still pending this long after it was recorded was left by a replica that
stopped (one document ingests in seconds)."""


async def resume_uploads(context: Context) -> None:
    """Uploads recorded but not ingested (the process stopped half-way) are ingested now:
    those recorded before this process started (``job.data``), and those pending for
    :data:`UPLOAD_STALE_S`. An upload recorded since start-up is this process's own, which
    the document handler is ingesting."""
    s = context.bot_data.services
    started = context.job.data if context.job is not None else None
    cutoff = s.store.now() - dt.timedelta(seconds=UPLOAD_STALE_S)
    if isinstance(started, dt.datetime):
        cutoff = max(cutoff, started)
    for upload in await s.store.pending_uploads(created_before=cutoff):
        admin = await s.store.get_user(telegram_id=upload.admin_telegram_id)
        lang: Lang = "en" if admin is not None and admin.lang == "en" else "zh"
        logger.info("resuming upload %d (%s)", upload.id, upload.file_name)
        await ingest_upload(
            s, upload.id, upload.telegram_file_id, upload.file_name, upload.admin_telegram_id, lang
        )
