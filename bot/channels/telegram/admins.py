"""Admins in a private chat (role checked by user id on every action): send a document to
ingest it, ``/kb``, ``/kb_remove ID``, ``/stats``, ``/unanswered``. Anyone else is refused,
and the refusal is logged.

A document whose id belongs to a document from another file (every upload is a file of its
own) is refused, naming that document and its file, unless the admin sent it with the caption
"replace" (or 替换): then it replaces that document, as ``kb ingest --replace`` does."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot.channels.telegram import formatting as fmt
from bot.channels.telegram.context import Context, Services
from bot.channels.telegram.gateway import DeliveryFailed
from bot.errors import DocumentNotFoundError, GradGuideError
from bot.kb.ingest import FileOutcome
from bot.kb.loaders import SUPPORTED_SUFFIXES
from bot.kb.models import Lang

logger = logging.getLogger(__name__)

STATS_DAYS = 7
PRIVATE = filters.ChatType.PRIVATE
REPLACE_CAPTIONS = frozenset({"replace", "/replace", "替换"})
"""A document sent with one of these captions may replace the document that has its id."""
REPLACE_NOTE = ".replace"
"""In an upload's folder: the admin asked to replace (read again when a restart resumes it)."""


def register(application: Application, services: Services) -> None:  # type: ignore[type-arg]
    for name, handler in {
        "kb": on_kb,
        "kb_remove": on_kb_remove,
        "stats": on_stats,
        "unanswered": on_unanswered,
    }.items():
        # registered before the graduates' handlers: the first match in a group wins
        application.add_handler(CommandHandler(name, handler, filters=PRIVATE))
    if services.settings.admin_ids:
        admins = filters.User(user_id=services.settings.admin_ids)
        application.add_handler(
            MessageHandler(PRIVATE & admins & filters.Document.ALL, on_document)
        )


async def _admin(update: Update, context: Context) -> tuple[Services, Lang] | None:
    """The services and the admin's language, or None (refused and logged) for anyone else."""
    s = context.bot_data.services
    user = update.effective_user
    chat = update.effective_chat
    assert user is not None and chat is not None
    record = await s.store.get_or_create_user(user.id, user.first_name)
    lang: Lang = "en" if record.lang == "en" else "zh"
    if user.id in s.settings.admin_ids:
        return s, lang
    return None


AdminAction = Callable[[Services, Lang, Update, Context], Awaitable[None]]
Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]


def admin_only(action: AdminAction) -> Handler:
    """The role check every admin command goes through: anyone else is refused (logged)."""

    async def handler(update: Update, context: Context) -> None:
        admin = await _admin(update, context)
        if admin is None:
            await _refuse(update, context)
            return
        await action(admin[0], admin[1], update, context)

    return handler


async def _refuse(update: Update, context: Context) -> None:
    s = context.bot_data.services
    user = update.effective_user
    chat = update.effective_chat
    assert user is not None and chat is not None
    record = await s.store.get_user(telegram_id=user.id)
    lang: Lang = "en" if record is not None and record.lang == "en" else "zh"
    logger.warning("user %s is not an admin: admin action refused", user.id)
    await _send(s, chat.id, s.messages.get("tg_not_allowed", lang))


async def _send(s: Services, chat_id: int, text: str) -> None:
    await s.need_desk.say(chat_id, text)


async def on_document(update: Update, context: Context) -> None:
    """An admin's file is downloaded into the data dir, recorded, and ingested. (Anyone
    else's file goes to the graduate handlers: relayed while a ticket is open.)"""
    s = context.bot_data.services
    user = update.effective_user
    message = update.effective_message
    if user is None or message is None or message.document is None:
        return
    admin = await _admin(update, context)
    assert admin is not None
    _, lang = admin
    document = message.document
    name = Path(document.file_name or "document").name
    chat = message.chat_id
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        reason = "unsupported file type" if lang == "en" else "不支持的文件类型"
        await _send(
            s,
            chat,
            s.messages.get("adm_file_refused", lang, name=fmt.escape(name), reason=reason),
        )
        return
    if (document.file_size or 0) > s.settings.max_file_mb * 1024 * 1024:
        reason = f"> {s.settings.max_file_mb:g} MB"
        await _send(
            s,
            chat,
            s.messages.get("adm_file_refused", lang, name=fmt.escape(name), reason=reason),
        )
        return
    replace = (message.caption or "").strip().lower() in REPLACE_CAPTIONS
    upload_id = await s.store.add_upload(user.id, name, document.file_id)
    await _send(s, chat, s.messages.get("adm_ingest_started", lang, name=fmt.escape(name)))
    await ingest_upload(s, upload_id, document.file_id, name, chat, lang, replace=replace)


async def ingest_upload(
    s: Services,
    upload_id: int,
    file_id: str,
    name: str,
    chat_id: int,
    lang: Lang,
    *,
    replace: bool | None = None,
) -> None:
    """Download and ingest one upload (also re-run by the job for uploads a restart cut off:
    ``replace`` None, the admin's choice is read from the note left in the upload's folder).

    Races: the job leaves alone uploads recorded since this process started, but a stale one
    may still meet the handler; whichever call comes second returns without a word, because
    the upload is in flight here or no longer pending, so the admin hears once. Across
    replicas nothing claims an upload: a replica that starts while another ingests may ingest
    the same file again (a second, identical outcome; the admin hears it twice)."""
    if upload_id in s.uploads_in_flight:
        return
    s.uploads_in_flight.add(upload_id)
    try:
        current = await s.store.get_upload(upload_id)
        if current is None or current.status != "pending":
            return  # the other call got there first and finished it
        folder = s.settings.data_dir / "uploads" / str(upload_id)
        folder.mkdir(parents=True, exist_ok=True)
        note = folder / REPLACE_NOTE
        if replace:
            note.write_text("replace", encoding="utf-8")
        elif replace is None:
            replace = note.is_file()
        safe = re.sub(r"[^\w.\-]+", "_", name)[:120] or "document"
        path = folder / safe
        try:
            file = await s.need_desk.gateway.run(
                "getFile", lambda: s.need_desk.gateway.bot.get_file(file_id)
            )
            await file.download_to_drive(path)
            loop = asyncio.get_running_loop()
            report = await loop.run_in_executor(
                s.kb_pool, functools.partial(s.kb.ingest, [path], replace=replace)
            )
        except (DeliveryFailed, GradGuideError, OSError) as exc:
            await s.store.finish_upload(upload_id, "failed", {"error": str(exc)[:500]})
            reason = fmt.escape(str(exc)[:300])
            await _send(
                s,
                chat_id,
                s.messages.get("adm_file_refused", lang, name=fmt.escape(name), reason=reason),
            )
            return
        await s.store.finish_upload(
            upload_id, "failed" if report.failed else "done", report.model_dump()
        )
        await _send(
            s,
            chat_id,
            s.messages.get(
                "adm_ingest_done",
                lang,
                added=report.count("added"),
                updated=report.count("updated"),
                unchanged=report.count("unchanged"),
                failed=report.count("failed"),
            ),
        )
        for outcome in report.conflicts:  # the document it would replace, and how to replace it
            assert outcome.conflict is not None
            c = outcome.conflict
            text = s.messages.get(
                "adm_ingest_conflict",
                lang,
                name=fmt.escape(name),
                doc_id=fmt.escape(c.doc_id),
                title=fmt.escape(c.title),
                source=fmt.escape(c.source),
            )
            await _send(s, chat_id, text)
        for outcome in report.failed:  # metadata: every field at once, in the admin's words
            if outcome.conflict is None and outcome.metadata_fields:
                await _send(s, chat_id, metadata_help(s, name, outcome, lang))
        others = [o for o in report.failed if o.conflict is None and not o.metadata_fields]
        if others:
            details = "\n".join(
                f"• {fmt.escape(Path(o.path).name)}: {fmt.escape(o.error or '')}" for o in others
            )
            await _send(s, chat_id, s.messages.get("adm_ingest_failures", lang, details=details))
    finally:
        s.uploads_in_flight.discard(upload_id)


def metadata_help(s: Services, name: str, outcome: FileOutcome, lang: Lang) -> str:
    """Which fields a file's metadata lacks (named in ``lang``), what was derived from the
    file, and the front matter to add at its top."""
    separator = s.messages.get("web_list_sep", lang)
    fields = separator.join(
        s.messages.get(f"web_meta_{field}", lang)
        if f"web_meta_{field}" in s.messages.names()
        else field
        for field in outcome.metadata_fields
    )
    derived = separator.join(f"{key} {value}" for key, value in outcome.derived.items())
    block = "\n".join(f"{field}: …" for field in outcome.metadata_fields)
    return s.messages.get(
        "adm_ingest_metadata",
        lang,
        name=fmt.escape(name),
        fields=fmt.escape(fields),
        derived=fmt.escape(derived or "—"),
        block=fmt.escape(f"---\n{block}\n---"),
    )


@admin_only
async def on_kb(s: Services, lang: Lang, update: Update, context: Context) -> None:
    assert update.effective_chat is not None
    documents = s.kb.documents()
    if not documents:
        await _send(s, update.effective_chat.id, s.messages.get("adm_kb_empty", lang))
        return
    today = s.store.now().date()
    lines = [s.messages.get("adm_kb_header", lang, count=len(documents))]
    for doc in sorted(documents, key=lambda d: d.meta.id):
        meta = doc.meta
        flag = ""
        if meta.expires is not None and meta.expires < today:
            flag = " ⌛"
        lines.append(f"<code>{fmt.escape(meta.id)}</code> — {fmt.escape(meta.title)}{flag}")
    await _send(s, update.effective_chat.id, "\n".join(lines))


@admin_only
async def on_kb_remove(s: Services, lang: Lang, update: Update, context: Context) -> None:
    assert update.effective_chat is not None
    chat = update.effective_chat.id
    if not context.args:
        await _send(s, chat, s.messages.get("adm_kb_remove_usage", lang))
        return
    doc_id = context.args[0][:200]
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(s.kb_pool, s.kb.remove, doc_id)
    except DocumentNotFoundError:
        await _send(s, chat, s.messages.get("adm_kb_unknown", lang, doc_id=fmt.escape(doc_id)))
        return
    logger.info(
        "admin %s removed document %s",
        update.effective_user.id if update.effective_user else "?",
        doc_id,
    )
    await _send(s, chat, s.messages.get("adm_kb_removed", lang, doc_id=fmt.escape(doc_id)))


@admin_only
async def on_stats(s: Services, lang: Lang, update: Update, context: Context) -> None:
    assert update.effective_chat is not None
    stats = await s.store.stats(s.store.now() - dt.timedelta(days=STATS_DAYS))
    median = (
        "—"
        if stats.median_first_response_s is None
        else f"{stats.median_first_response_s / 60:.1f} min"
    )
    text = s.messages.get(
        "adm_stats",
        lang,
        days=STATS_DAYS,
        questions=stats.questions,
        answered=stats.answered,
        handed_off=stats.handed_off,
        thumbs_up=stats.thumbs_up,
        thumbs_down=stats.thumbs_down,
        ratings=stats.ratings,
        rating_mean="—" if stats.rating_mean is None else f"{stats.rating_mean:.1f}",
        median_first_reply=median,
        unanswered=stats.unanswered,
    )
    await _send(s, update.effective_chat.id, text)


@admin_only
async def on_unanswered(s: Services, lang: Lang, update: Update, context: Context) -> None:
    assert update.effective_chat is not None
    rows = await s.store.list_unanswered(s.store.now() - dt.timedelta(days=STATS_DAYS), 50)
    if not rows:
        await _send(
            s,
            update.effective_chat.id,
            s.messages.get("adm_unanswered_empty", lang, days=STATS_DAYS),
        )
        return
    lines = [s.messages.get("adm_unanswered_header", lang, count=len(rows), days=STATS_DAYS)]
    lines += [f"• {fmt.escape(r.question[:200])}" for r in rows]
    await _send(s, update.effective_chat.id, "\n".join(lines))
