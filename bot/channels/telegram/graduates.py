"""Graduates in a private chat: questions, commands, buttons, media, handoff and the queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Message, Update
from telegram import User as TgUser
from telegram.constants import ChatAction, ChatType
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.agent.models import Conversation, HandoffReason, Intent, Reply
from bot.channels.telegram import counsellors, forget
from bot.channels.telegram import formatting as fmt
from bot.channels.telegram.context import Context, Services, chat_key
from bot.channels.telegram.desk import Desk, message_payload
from bot.channels.telegram.gateway import DeliveryFailed
from bot.channels.telegram.media import attachment_of
from bot.errors import KnowledgeBaseError
from bot.handoff import office_hours
from bot.handoff import outcomes as out
from bot.handoff.directory import graduate_lang, lang_of
from bot.handoff.models import Relayed
from bot.kb.models import Lang, detect_lang
from bot.kb.regions import REGIONS, normalise_region
from bot.privacy import redact
from bot.storage.console_store import ConsoleStore
from bot.storage.store import (
    ConversationRecord,
    Escalated,
    Exchange,
    NewTurn,
    Send,
    Ticket,
    Unanswered,
    User,
)

logger = logging.getLogger(__name__)

PRIVATE = filters.ChatType.PRIVATE
KNOWN_REGIONS = frozenset(REGIONS.values())
_LETTERS = re.compile(r"[A-Za-z\u3400-\u4dbf\u4e00-\u9fff]")
_HAS_LANGUAGE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]|[A-Za-z]{2}")
"""Text the agent can tell the language of (a Chinese character or two Latin letters in
a row, as ``Agent._language``): "k 👍" or "y?" keeps the conversation's language."""


def services_of(context: Context) -> Services:
    return context.bot_data.services


def register(application: Application, services: Services) -> None:  # type: ignore[type-arg]
    commands = {
        "start": on_start,
        "help": on_help,
        "lang": on_lang,
        "region": on_region,
        "reset": on_reset,
        "human": on_human,
        "cancel": on_cancel,
        "forget": on_forget,
        "contact": on_contact,
    }
    for name, handler in commands.items():
        application.add_handler(CommandHandler(name, handler, filters=PRIVATE))
    # in any chat, before anything is configured: the ids the settings need
    application.add_handler(CommandHandler("ids", on_ids))
    application.add_handler(MessageHandler(PRIVATE & filters.COMMAND, on_unknown_command))
    application.add_handler(MessageHandler(PRIVATE & filters.TEXT, on_text))
    application.add_handler(
        MessageHandler(PRIVATE & ~filters.TEXT & ~filters.StatusUpdate.ALL, on_media)
    )
    application.add_handler(CallbackQueryHandler(on_callback))


# -- helpers ----------------------------------------------------------------------------


def guess_lang(user: User | None, tg_user: TgUser | None, text: str | None = None) -> Lang:
    """The user's chosen language; else the language of what they wrote; else Telegram's."""
    if user is not None and user.lang in ("zh", "en"):
        return lang_of(user)
    if text and text.strip() and not text.startswith("/"):
        return detect_lang(text)
    code = (tg_user.language_code or "") if tg_user else ""
    return "zh" if code.startswith("zh") or not code else "en"


async def _user(s: Services, update: Update) -> User:
    tg_user = update.effective_user
    assert tg_user is not None
    return await s.store.get_or_create_user(tg_user.id, tg_user.first_name)


async def say(
    s: Services, chat_id: int, text: str, *, reply_markup: Any = None, key: str | None = None
) -> Message | None:
    """A catalogue message (HTML) to the graduate (``Desk.say``)."""
    return await s.need_desk.say(chat_id, text, reply_markup=reply_markup, key=key)


async def _who(update: Update, context: Context) -> tuple[Services, User, int, Lang]:
    """What every graduate command starts with: the services, the user, the chat, the
    language to answer in."""
    s = services_of(context)
    user = await _user(s, update)
    assert update.effective_chat is not None
    return s, user, update.effective_chat.id, guess_lang(user, update.effective_user)


async def _to_counsellor(
    s: Services, update: Update, user: User, ticket: Ticket, chat_id: int, message_id: int
) -> Relayed:
    desk = s.need_desk
    student = student_of(s, update.effective_user, desk)
    return await desk.relay_to_counsellors(ticket, chat_id, message_id, student=student, user=user)


def _state(conversation: ConversationRecord, user: User) -> Conversation:
    state = (
        Conversation.model_validate(conversation.state)
        if conversation.state
        else Conversation(id=str(conversation.id))
    )
    state.lang = lang_of(user) if user.lang in ("zh", "en") else None
    state.region = user.region
    return state


def _rate_limited(s: Services, sent_last_minute: float) -> int:
    """Seconds to wait, or 0 when the message may go through (``sent_last_minute``
    counts this message, on every replica: ``Store.count_message``)."""
    limit = s.settings.rate_limit_per_minute
    if limit <= 0 or sent_last_minute <= limit:
        return 0
    return max(1, math.ceil(60 * (sent_last_minute - limit) / sent_last_minute))


async def ask_agent(s: Services, state: Conversation, text: str) -> Reply:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(s.agent_pool, s.agent.reply, state, text)


async def _screen(
    s: Services, conversation: ConversationRecord, user: User, text: str
) -> Reply | None:
    """The crisis check alone, on a message that goes to a counsellor (a ticket is open):
    the agent does not answer it, but a crisis in it must not wait for a counsellor to
    read it (``Agent.screen``)."""
    loop = asyncio.get_running_loop()
    state = _state(conversation, user)
    return await loop.run_in_executor(s.agent_pool, s.agent.screen, state, text)


async def _escalate(s: Services, ticket: Ticket, crisis: Reply, update_id: int) -> None:
    """A crisis told to a counsellor: the ticket becomes a crisis, urgent (first in every
    queue), and its topic gets an alert naming the kind, once per message."""
    kind = crisis.signals[0] if crisis.signals else "self_harm"
    outcome = await s.store.escalate_ticket(ticket.id, {"signals": crisis.signals})
    if outcome is Escalated.CLOSED:
        return
    desk = s.need_desk
    lang = desk.group_lang
    alert = s.messages.get("grp_crisis_alert", lang, kind=s.messages.get(f"sig_{kind}", lang))
    await desk.notify_topic(ticket, f"crisis-alert:{ticket.id}:{update_id}", alert)


def student_of(s: Services, tg_user: TgUser | None, desk: Desk) -> str:
    first = tg_user.first_name if tg_user else None
    last = tg_user.last_name if tg_user else None
    return fmt.student_label(first, last, desk.group_lang, s.messages)


# -- the question flow ------------------------------------------------------------------


async def on_text(update: Update, context: Context) -> None:
    s = services_of(context)
    message = update.effective_message
    tg_user = update.effective_user
    assert message is not None and message.text is not None and tg_user is not None
    preloaded = s.preloaded.pop(update.update_id, None)  # read when the update was claimed
    if preloaded is not None:
        user, conversation = preloaded.user, preloaded.conversation
        sent = preloaded.sent_last_minute
    else:
        async with s.store.transaction() as tx:
            user = await s.store.get_or_create_user(tg_user.id, tg_user.first_name, session=tx)
            conversation = await s.store.load_conversation(user.id, session=tx)
            sent = await s.store.count_message(user.id, s.store.now(), session=tx)
    wait = _rate_limited(s, sent)
    if wait:
        lang = guess_lang(user, update.effective_user, message.text)
        await say(s, message.chat_id, s.messages.get("tg_rate_limited", lang, seconds=wait))
        return
    await handle_question(s, update, user, message.text, message, conversation)


async def handle_question(
    s: Services,
    update: Update,
    user: User,
    text: str,
    message: Message | None,
    loaded: ConversationRecord | None = None,
) -> None:
    """A graduate's text: to the counsellor while one owns the conversation, else to the
    agent — and the agent's answer is sent only if the bot still owns the conversation.
    (Updates of one chat run in order, so a conversation ``loaded`` just before is fresh.)"""
    desk = s.need_desk
    chat_id = update.effective_chat.id if update.effective_chat else user.telegram_id
    assert chat_id is not None
    async with s.locks[user.id]:
        conversation = loaded or await s.store.load_conversation(user.id)
        if conversation.owner != "bot":
            ticket = await s.store.open_ticket_for(conversation.id)
            if ticket is not None:
                await s.store.add_turn(conversation.id, "graduate", text)
                crisis = await _screen(s, conversation, user, text)
                if crisis is not None:  # the emergency numbers first, not after the relay
                    key = f"crisis:{ticket.id}:{update.update_id}"
                    await say(s, chat_id, fmt.escape(crisis.text), key=key)
                if message is not None:
                    await _to_counsellor(s, update, user, ticket, chat_id, message.message_id)
                if crisis is not None:
                    await _escalate(s, ticket, crisis, update.update_id)
                return
            await s.store.set_owner(conversation.id, "bot")  # no open ticket: repair
        typing: asyncio.Task[None] | None = None
        if s.settings.typing_after_s > 0:
            typing = asyncio.create_task(_typing(s, chat_id, s.settings.typing_after_s))
        else:
            await _typing(s, chat_id, 0)
        state = _state(conversation, user)
        if state.lang is None and (text.startswith("/") or not _HAS_LANGUAGE.search(text)):
            # A command or an emoji has no language of its own: keep the conversation's.
            earlier = await s.store.recent_turns(conversation.id, 10)
            langs = [t.lang for t in earlier if t.lang in ("zh", "en")]
            state.lang = (
                "en"
                if (langs and langs[-1] == "en")
                else ("zh" if langs else guess_lang(None, update.effective_user))
            )
        try:
            reply = await ask_agent(s, state, text)
        except KnowledgeBaseError as exc:
            logger.error("knowledge base unavailable: %s", exc)
            lang = guess_lang(user, update.effective_user, text)
            await say(
                s,
                chat_id,
                s.messages.get("tg_unavailable", lang),
                reply_markup=fmt.human_keyboard(lang, s.messages),
            )
            return
        finally:
            if typing is not None:
                typing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await typing
        recorded = await _record_exchange(
            s,
            conversation.id,
            user.id,
            text,
            message,
            reply,
            state,
            update.update_id,
            chat_key(update),
            chat_id,
        )
        if recorded is None:
            # A counsellor took over while the agent was thinking: the question goes to them.
            ticket = await s.store.open_ticket_for(conversation.id)
            if ticket is not None and message is not None:
                await _to_counsellor(s, update, user, ticket, chat_id, message.message_id)
            return
        if reply.handoff:
            await start_handoff(s, update, user, conversation.id, reply, chat_id)
            return
        await desk.deliver(recorded.queued)  # in the outbox already: sent, then marked sent


async def _record_exchange(
    s: Services,
    conversation_id: int,
    user_id: int,
    text: str,
    message: Message | None,
    reply: Reply,
    state: Conversation,
    update_id: int,
    chat: tuple[int, int] | None,
    chat_id: int,
) -> Exchange | None:
    """Store the question, the answer, the agent's state and the messages that carry the
    answer (in the outbox, leased to this process: ``Desk.deliver`` sends them) in one
    transaction — unless a counsellor took the conversation over while the agent was
    thinking: then the bot stays silent (None) and the audit trail says its answer was
    withheld.

    A handoff's messages are sent by ``start_handoff``, which opens the ticket: that
    update is marked done, and its chat handed on, only at its end (``done``), so that a
    process that dies half-way leaves it to be processed again."""
    store = s.store
    dumped = state.model_dump(mode="json")
    question = NewTurn(
        "graduate",
        text,
        lang=reply.lang,
        telegram_message_id=message.message_id if message else None,
    )
    answer = NewTurn(
        "bot",
        reply.text,
        lang=reply.lang,
        intent=reply.intent.value,
        confidence=reply.confidence,
        handoff=reply.handoff,
        citations=tuple(c.doc_id for c in reply.citations),
    )
    unclear = reply.intent is Intent.UNCLEAR and not reply.handoff and _LETTERS.search(text)
    unanswered = (
        Unanswered(user_id, text, reply.lang, reply.confidence, "low_confidence")
        if unclear
        else None
    )
    parts = [] if reply.handoff else fmt.render_reply(reply, s.messages)

    def sends(turn: int) -> list[Send]:
        """The answer's parts, the buttons (which name its turn) on the last one. Keyed by
        the update too: SQLite gives a deleted turn's id to the next turn (retention or
        /forget may delete the newest ones), and a key already in the outbox is not queued
        again, so a key of the turn alone could silently drop a later answer."""
        keyboard = fmt.answer_keyboard(turn, reply.lang, s.messages) if reply.citations else None
        return [
            Send(
                f"answer:{update_id}:{turn}:{index}",
                "sendMessage",
                message_payload(
                    chat_id, part, reply_markup=keyboard if index == len(parts) - 1 else None
                ),
            )
            for index, part in enumerate(parts)
        ]

    # The chat is handed on with the answer: its next message may start on another
    # replica while this answer is being sent (this replica keeps them in order).
    handing_on = not reply.handoff
    if handing_on:
        renewal = s.renewals.pop(update_id, None)
        if renewal is not None:
            await renewal.stop()
    recorded = await store.finish_exchange(
        update_id,
        conversation_id,
        dumped,
        question,
        answer,
        chat=chat if handing_on else None,
        unanswered=unanswered,
        finish=handing_on,
        sends=sends,
        lease=s.need_desk.send_lease,
    )
    if recorded is None:  # a counsellor owns the conversation now: nothing was written
        # The update stays 'processing' until the question has reached the counsellor
        # (the relay marks it done, or ``done`` does): a process that dies in between leaves
        # it to be taken up again, rather than the question lost.
        async with store.transaction() as tx:
            await _withhold(s, conversation_id, question, reply, dumped, tx)
    elif handing_on:
        s.finished.add(update_id)  # done with the exchange it records
        s.released.add(update_id)
    return recorded


async def _withhold(
    s: Services,
    conversation_id: int,
    question: NewTurn,
    reply: Reply,
    state: dict[str, Any],
    tx: AsyncSession,
) -> None:
    """A counsellor owns the conversation (or it was forgotten) by the time the agent
    answered: the question joins the transcript, the answer only the ticket's audit trail."""
    store = s.store
    fresh = await store.get_conversation(conversation_id, session=tx)
    if fresh is None:  # /forget in the meantime
        return
    await store.add_turn(
        conversation_id,
        "graduate",
        question.text,
        lang=question.lang,
        telegram_message_id=question.telegram_message_id,
        session=tx,
    )
    ticket = await store.open_ticket_for(conversation_id, session=tx)
    if ticket is not None:
        withheld = {"answer": reply.text[:2000]}
        await store.add_event(ticket.id, "bot_reply_withheld", "bot", withheld, session=tx)
    await store.save_state(conversation_id, state, fresh.version, session=tx)


async def _typing(s: Services, chat_id: int, after_s: float) -> None:
    """The typing indicator, once the answer takes noticeably long (a quick answer needs no
    indicator, and skipping it halves the requests per question)."""
    if after_s > 0:
        await asyncio.sleep(after_s)
    try:
        await s.need_desk.gateway.bot.send_chat_action(chat_id, ChatAction.TYPING)
    except Exception as exc:  # a typing indicator is a nicety, never a failure
        logger.debug("typing indicator failed: %s", exc)


async def start_handoff(
    s: Services, update: Update, user: User, conversation_id: int, reply: Reply, chat_id: int
) -> None:
    """Tell the graduate (the agent's handoff message), open the ticket with its topic and
    card, then say where they are in the queue (and when counsellors are in, outside office
    hours) — unless a counsellor has claimed it in the meantime. When Telegram refuses the
    topic outright (the group is no longer a forum, the bot lost its rights) the graduate
    is told no counsellor can see it yet (a crisis: with the hotlines again) and the admins
    are alerted."""
    desk = s.need_desk
    lang = reply.lang
    notice = s.messages.get("handoff_sensitive", lang)
    draft: Reply | None = None
    if reply.handoff_reason is HandoffReason.SENSITIVE and reply.citations:
        # A rights violation happening now: a counsellor checks the answer before it goes
        # out (Send draft); the graduate hears that someone is on it.
        draft = reply.model_copy(update={"text": reply.text.replace(notice, "", 1).strip()})
        shown = notice
    else:
        shown = reply.text
    await say(s, chat_id, fmt.escape(shown), key=f"handoff-msg:{conversation_id}")
    student = student_of(s, update.effective_user, desk)
    handoff = await s.handoff.open(user.id, conversation_id, reply, draft=draft)
    if handoff.created:
        opened = await desk.open_topic(handoff.ticket, student=student, user=user)
        if opened.refused is not None:
            # no counsellor can see it until an admin fixes the group: say so, never "queued"
            await desk.alert_admins(opened.ticket, opened.refused)
            key = "tg_handoff_undelivered_crisis" if reply.intent is Intent.CRISIS else None
            text = s.messages.get(key or "tg_handoff_undelivered", lang)
            await say(s, chat_id, text, key=f"undelivered:{handoff.ticket.id}")
            return
    if reply.intent is Intent.CRISIS:
        text = s.messages.get("tg_handoff_crisis_queued", lang)
        await say(s, chat_id, text, key=f"queued:{handoff.ticket.id}:{handoff.created}")
        return

    async def queue_message() -> Message | None:
        """Checked again on every attempt (a 429 may delay it): once a counsellor has
        claimed the ticket (and said so), there is no queue to talk about."""
        fresh = await s.store.get_ticket(handoff.ticket.id)
        position = await s.store.queue_position(fresh.id) if fresh is not None else 0
        if fresh is None or fresh.status != "queued" or position == 0:
            return None
        if not handoff.created:
            text = s.messages.get("tg_handoff_already", lang, position=position)
        elif _office_open(s):
            text = s.messages.get("tg_handoff_queued", lang, position=position)
        else:
            hours = office_hours.format_office_hours(s.settings.office_hours, lang)
            text = s.messages.get(
                "tg_handoff_queued_offhours", lang, position=position, hours=hours
            )
        return await desk.gateway.bot.send_message(chat_id, text, parse_mode="HTML")

    try:
        await desk.gateway.run("sendMessage", queue_message)
    except DeliveryFailed as exc:  # the graduate was already told a counsellor will reply
        logger.warning("queue position for ticket #%d not sent: %s", handoff.ticket.id, exc)


def _office_open(s: Services) -> bool:
    hours = office_hours.parse_office_hours(s.settings.office_hours)
    return hours.is_open(s.store.now(), s.settings.timezone)


# -- commands ---------------------------------------------------------------------------


async def on_start(update: Update, context: Context) -> None:
    s, user, chat, lang = await _who(update, context)
    await s.store.set_consent(user.id)
    days = s.settings.retention_days
    retention = (
        s.messages.get("tg_retention_days", lang, days=days)
        if days > 0
        else s.messages.get("tg_retention_forever", lang)
    )
    await say(
        s,
        chat,
        s.messages.get("tg_welcome", lang, retention=retention),
        reply_markup=fmt.language_keyboard(s.messages),
    )


async def on_help(update: Update, context: Context) -> None:
    s, _, chat, lang = await _who(update, context)
    await say(s, chat, s.messages.get("tg_help", lang))


async def on_ids(update: Update, context: Context) -> None:
    """``/ids``: the sender's numeric id and, in a group, the group's (for
    GRADGUIDE_COUNSELLOR_IDS / ADMIN_IDS / COUNSELLOR_CHAT_ID). Nothing is stored."""
    s = services_of(context)
    chat, sender = update.effective_chat, update.effective_user
    if chat is None or sender is None:
        return
    lang = guess_lang(None, sender)
    if chat.type == ChatType.PRIVATE:
        text = s.messages.get("tg_ids_private", lang, user_id=sender.id)
    else:
        key = "tg_ids_forum" if chat.is_forum else "tg_ids_group"
        text = s.messages.get(
            key, lang, user_id=sender.id, chat_id=chat.id, title=fmt.escape(chat.title or "")
        )
    await say(s, chat.id, text)


async def on_lang(update: Update, context: Context) -> None:
    s, user, chat, lang = await _who(update, context)
    arg = (context.args or [""])[0].lower()
    if arg in ("zh", "en"):
        choice: Lang = "zh" if arg == "zh" else "en"
        await s.store.set_user_lang(user.id, choice)
        await say(s, chat, s.messages.get("tg_lang_set", choice))
        return
    await say(
        s,
        chat,
        s.messages.get("tg_lang_choose", lang),
        reply_markup=fmt.language_keyboard(s.messages),
    )


async def on_region(update: Update, context: Context) -> None:
    s, user, chat, lang = await _who(update, context)
    value = " ".join(context.args or []).strip()
    if not value:
        await say(s, chat, s.messages.get("tg_region_ask", lang))
        return
    if value in ("-", "none", "清除", "全国", "national"):
        await s.store.set_user_region(user.id, None)
        await say(s, chat, s.messages.get("tg_region_cleared", lang))
        return
    region = normalise_region(value)
    if region is None or region == "national" or region not in KNOWN_REGIONS:
        text = s.messages.get("tg_region_unknown", lang, value=fmt.escape(value[:40]))
        await say(s, chat, text)
        return
    await s.store.set_user_region(user.id, region)
    await say(s, chat, s.messages.get("tg_region_set", lang, region=fmt.escape(value[:40])))


async def on_reset(update: Update, context: Context) -> None:
    s = services_of(context)
    user = await _user(s, update)
    assert update.effective_chat is not None
    async with s.locks[user.id]:
        conversation = await s.store.load_conversation(user.id)
        state = _state(conversation, user)
        state.reset()
        await s.store.save_state(
            conversation.id, state.model_dump(mode="json"), conversation.version
        )
    lang = guess_lang(user, update.effective_user)
    await say(s, update.effective_chat.id, s.messages.get("tg_reset_done", lang))


async def on_human(update: Update, context: Context) -> None:
    s = services_of(context)
    user = await _user(s, update)
    await ask_for_human(s, update, user)


async def ask_for_human(s: Services, update: Update, user: User) -> None:
    """/human or the button: a ticket — or, when one is already open, where they are."""
    conversation = await s.store.load_conversation(user.id)
    ticket = await s.store.open_ticket_for(conversation.id)
    if ticket is None:
        await handle_question(s, update, user, "/human", None)
        return
    lang = await graduate_lang(s.store, user)
    position = await s.store.queue_position(ticket.id)
    chat_id = update.effective_chat.id if update.effective_chat else user.telegram_id
    assert chat_id is not None
    key = "tg_handoff_already" if position else "tg_counsellor_joined"
    await say(s, chat_id, s.messages.get(key, lang, position=position))


async def on_cancel(update: Update, context: Context) -> None:
    s, user, chat, lang = await _who(update, context)
    cancelled = isinstance(await s.handoff.cancel(user.id), out.Cancelled)
    await say(s, chat, s.messages.get("tg_cancel_done" if cancelled else "tg_cancel_nothing", lang))


async def on_forget(update: Update, context: Context) -> None:
    s, _, chat, lang = await _who(update, context)
    await say(
        s,
        chat,
        s.messages.get("tg_forget_confirm", lang),
        reply_markup=fmt.forget_keyboard(lang, s.messages),
    )


async def on_contact(update: Update, context: Context) -> None:
    """/contact <phone or e-mail>: left for a counsellor when the wait is long."""
    s, user, chat, lang = await _who(update, context)
    saved = await s.handoff.leave_contact(user.id, " ".join(context.args or []))
    if isinstance(saved, out.ContactSaved):
        message = update.effective_message
        assert message is not None
        # into the ticket's topic, where /forget finds it
        await forget.post_contact(s, saved.ticket, chat, message.message_id, saved.contact)
    await say(s, chat, s.messages.get(out.contact_reply(saved), lang))


async def on_unknown_command(update: Update, context: Context) -> None:
    s = services_of(context)
    user = await _user(s, update)
    message = update.effective_message
    assert message is not None and message.text is not None
    lang = guess_lang(user, update.effective_user)
    command = message.text.split()[0][:40]
    await say(
        s, message.chat_id, s.messages.get("tg_unknown_command", lang, command=fmt.escape(command))
    )


async def on_media(update: Update, context: Context) -> None:
    """Photos, voice, stickers, files: relayed to the counsellor while a ticket is open;
    otherwise a note on what the bot reads. (Admins' documents are handled before this.)"""
    s = services_of(context)
    message = update.effective_message
    if message is None:
        return
    user = await _user(s, update)
    lang = guess_lang(user, update.effective_user)
    conversation = await s.store.load_conversation(user.id)
    ticket = await s.store.open_ticket_for(conversation.id)
    if ticket is None:
        await say(s, message.chat_id, s.messages.get("tg_media_note", lang))
        return
    await s.store.add_turn(conversation.id, "graduate", message.caption or "[media]")
    attachment = attachment_of(message)
    if attachment is not None:  # for the ticket page of the web console
        await ConsoleStore(s.store).add_attachment(
            ticket.id,
            conversation.id,
            chat_id=message.chat_id,
            message_id=message.message_id,
            caption=redact(message.caption) if message.caption else None,  # as the turn
            **attachment,
        )
    relayed = await _to_counsellor(s, update, user, ticket, message.chat_id, message.message_id)
    if relayed is Relayed.SENT:
        await say(s, message.chat_id, s.messages.get("tg_media_relayed", lang))


# -- buttons ----------------------------------------------------------------------------


async def on_callback(update: Update, context: Context) -> None:
    """Every inline button. The ids in callback data are never trusted: each action checks
    that the ticket or answer belongs to the person who pressed the button."""
    s = services_of(context)
    query = update.callback_query
    assert query is not None
    callback = fmt.parse_callback(query.data)
    if callback is not None and callback.action in ("claim", "draft", "resolve"):
        await counsellors.on_card_button(update, context, callback)
        return
    user = await _user(s, update)
    lang = guess_lang(user, update.effective_user)
    chat_id = query.message.chat.id if query.message else user.telegram_id
    assert chat_id is not None
    handled = callback is not None and await _graduate_button(
        s, update, user, lang, chat_id, callback
    )
    try:
        if handled:
            await query.answer()
        else:
            await query.answer(s.messages.get("tg_button_expired", lang), show_alert=False)
    except Exception as exc:  # an old query cannot be answered: nothing to do
        logger.debug("callback answer failed: %s", exc)


async def _graduate_button(
    s: Services, update: Update, user: User, lang: Lang, chat_id: int, callback: fmt.Callback
) -> bool:
    conversation = await s.store.load_conversation(user.id)
    action = callback.action
    if action == "lang":
        choice: Lang = "zh" if callback.args[0] == "zh" else "en"
        await s.store.set_user_lang(user.id, choice)
        await say(s, chat_id, s.messages.get("tg_lang_set", choice))
        return True
    if action == "fb":
        turn_id, helpful = callback.int_arg(0), callback.args[1] == "up"
        turns = await s.store.recent_turns(conversation.id, 200)
        if not any(t.id == turn_id and t.role == "bot" for t in turns):
            return False
        if await s.store.has_feedback(user.id, turn_id):
            return True  # a double tap counts once
        await s.store.add_feedback(
            user.id,
            "thumb",
            1 if helpful else -1,
            conversation_id=conversation.id,
            turn_id=turn_id,
        )
        async with s.locks[user.id]:
            conversation = await s.store.load_conversation(user.id)
            state = _state(conversation, user)
            escalate = s.agent.record_feedback(state, helpful)
            await s.store.save_state(
                conversation.id, state.model_dump(mode="json"), conversation.version
            )
        if escalate is not None and conversation.owner == "bot":
            await start_handoff(s, update, user, conversation.id, escalate, chat_id)
        else:
            key = "tg_feedback_up" if helpful else "tg_feedback_down"
            await say(s, chat_id, s.messages.get(key, lang))
        return True
    if action == "human":
        await ask_for_human(s, update, user)
        return True
    if action == "forget":
        await forget.on_answer(s, user, lang, chat_id, callback.args[0] == "yes")
        return True
    if action == "rate":
        rated = await s.handoff.rate(user.id, callback.int_arg(0), callback.int_arg(1))
        if not isinstance(rated, out.Rated):
            return False
        await say(s, chat_id, s.messages.get("tg_rate_thanks", lang))
        return True
    if action == "back":
        if not isinstance(await s.handoff.cancel(user.id, callback.int_arg(0)), out.Cancelled):
            return False
        await say(s, chat_id, s.messages.get("tg_back_to_bot", lang))
        return True
    return False
