"""Counsellors in the forum supergroup: one topic per ticket, commands and card buttons.

Only listed counsellor ids, inside the configured counsellor chat, may act; updates from any
other group are ignored. The ticket operations (claim, reply, send draft, resolve) are plain
functions of a :class:`Desk`, so ``gradguide handoffs`` uses the very same path.
"""

from __future__ import annotations

import logging
from typing import cast

from telegram import Message, Update
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from bot.channels.telegram import formatting as fmt
from bot.channels.telegram.app import Services
from bot.channels.telegram.desk import Desk, Relayed, graduate_lang, message_payload
from bot.channels.telegram.gateway import DeliveryFailed
from bot.handoff.models import Actor
from bot.storage.store import Send, Ticket

logger = logging.getLogger(__name__)


def register(application: Application, services: Services) -> None:  # type: ignore[type-arg]
    group_id = services.settings.counsellor_chat_id
    if group_id is None:
        logger.warning("GRADGUIDE_COUNSELLOR_CHAT_ID is not set: tickets wait for the CLI")
        return
    in_group = filters.Chat(chat_id=group_id)
    commands = {
        "claim": on_claim,
        "resolve": on_resolve,
        "back_to_bot": on_back_to_bot,
        "transfer": on_transfer,
        "note": on_note,
        "help": on_topic_help,
    }
    for name, handler in commands.items():
        application.add_handler(CommandHandler(name, handler, filters=in_group))
    application.add_handler(
        MessageHandler(in_group & ~filters.COMMAND & ~filters.StatusUpdate.ALL, on_topic_message)
    )


def _services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return cast(Services, context.application.bot_data["services"])


def counsellor_name(update: Update) -> str:
    user = update.effective_user
    return (user.first_name if user else None) or "counsellor"


async def _ticket_here(s: Services, update: Update) -> Ticket | None:
    """The ticket of the topic this message is in — only for a listed counsellor."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None:
        return None
    if user.id not in s.settings.counsellor_ids:
        logger.warning(
            "user %s is not a counsellor: action in the counsellor group refused", user.id
        )
        if message.text and message.text.startswith("/"):
            await _reply(s, message, s.messages.get("grp_not_counsellor", s.need_desk.group_lang))
        return None
    if not message.is_topic_message or message.message_thread_id is None:
        return None
    return await s.store.ticket_by_topic(message.chat_id, message.message_thread_id)


async def _reply(s: Services, message: Message, text: str) -> None:
    """A notice in the topic the message came from (reopened for it if it is closed)."""
    if message.message_thread_id is None:
        try:
            await s.need_desk.send(message.chat_id, text)
        except DeliveryFailed as exc:
            logger.warning("group notice failed: %s", exc)
        return
    await s.need_desk.send_to_topic(message.chat_id, message.message_thread_id, text)


# -- the ticket operations, shared with the CLI -------------------------------------------


async def claim(desk: Desk, ticket: Ticket, counsellor_id: int, name: str) -> bool:
    if not await desk.store.claim(ticket.id, counsellor_id):
        return False
    if counsellor_id:  # remember the counsellor's name for "already claimed by …"
        record = await desk.store.get_or_create_user(counsellor_id, name)
        await desk.store.set_role(record.id, "counsellor")
    await desk.notify_topic(
        ticket,
        f"claimed:{ticket.id}:{counsellor_id}",
        desk.messages.get("grp_claimed", desk.group_lang, name=fmt.escape(name)),
    )
    user = await desk.store.get_user(ticket.user_id)
    if user is not None and user.telegram_id is not None:
        await desk.send_or_queue(
            f"joined:{ticket.id}:{counsellor_id}",
            user.telegram_id,
            desk.messages.get("tg_counsellor_joined", await graduate_lang(desk.store, user)),
        )
    return True


async def close(desk: Desk, ticket: Ticket, actor: str, name: str, *, rate: bool = True) -> bool:
    """Resolve: the topic is closed, the graduate is told and asked for a 1–5 rating, and
    the bot answers again."""
    if not await desk.store.resolve(ticket.id, actor):
        return False
    key = "grp_resolved" if rate else "grp_back_to_bot"
    await desk.notify_topic(
        ticket, f"{key}:{ticket.id}", desk.messages.get(key, desk.group_lang, name=fmt.escape(name))
    )
    await desk.close_topic(ticket)
    user = await desk.store.get_user(ticket.user_id)
    if user is None or user.telegram_id is None:
        return True
    lang = await graduate_lang(desk.store, user)
    await desk.send_or_queue(
        f"resolved:{ticket.id}", user.telegram_id, desk.messages.get("tg_resolved", lang)
    )
    if rate:
        try:
            await desk.send(
                user.telegram_id,
                desk.messages.get("tg_rate_prompt", lang),
                reply_markup=fmt.rating_keyboard(ticket.id, lang, desk.messages),
            )
        except DeliveryFailed as exc:
            logger.warning("rating prompt for ticket #%d not sent: %s", ticket.id, exc)
    return True


async def send_draft(desk: Desk, ticket: Ticket, actor: str, name: str) -> Relayed:
    """The bot's draft answer, checked by a counsellor, to the graduate: durable in the
    outbox (with the transcript's turn and the audit event) before the first attempt, then
    sent. ``NOWHERE`` for a closed ticket, one without a draft or a graduate's chat.

    Races: a double tap, or the button and the web console at once: the outbox's keys
    (``draft:<ticket>:<part>``) let exactly one caller queue it; the others get
    ``ALREADY`` and send nothing."""
    if not ticket.is_open or not ticket.draft_answer:
        return Relayed.NOWHERE
    if any(event.kind == "draft_sent" for event in await desk.store.events(ticket.id)):
        return Relayed.ALREADY  # a double tap (button presses of one topic run in order)
    user = await desk.store.get_user(ticket.user_id)
    if user is None or user.telegram_id is None:
        return Relayed.NOWHERE
    graduate = user.telegram_id
    parts = fmt.split_html(fmt.escape(ticket.draft_answer))
    sends = [
        Send(f"draft:{ticket.id}:{i}", "sendMessage", message_payload(graduate, part), ticket.id)
        for i, part in enumerate(parts)
    ]
    store = desk.store
    async with store.transaction() as tx:  # decided: durable before the first attempt
        items = await store.queue(sends, lease=desk.send_lease, session=tx)
        if not items:
            return Relayed.ALREADY
        await store.mark_first_response(ticket.id, session=tx)
        await store.add_turn(ticket.conversation_id, "counsellor", ticket.draft_answer, session=tx)
        await store.add_event(ticket.id, "draft_sent", actor, {}, session=tx)
    delivery = await desk.deliver(items)
    await desk.notify_topic(
        ticket,
        f"draft-sent:{ticket.id}",
        desk.messages.get("grp_draft_sent", desk.group_lang, name=fmt.escape(name)),
    )
    if delivery.failed is not None:
        return Relayed.REFUSED if delivery.failed.permanent else Relayed.QUEUED
    return Relayed.QUEUED if delivery.lost else Relayed.SENT


async def reply(
    desk: Desk,
    ticket: Ticket,
    text: str | None,
    *,
    source_chat_id: int,
    source_message_id: int,
    counsellor_id: int | None,
    name: str | None,
    actor: str,
) -> Relayed:
    """A counsellor's answer to the graduate (claiming a queued ticket on the way);
    ``NOWHERE`` when the ticket is closed or the graduate has no chat."""
    if not ticket.is_open:
        return Relayed.NOWHERE
    if ticket.status == "queued" and counsellor_id is not None:
        await claim(desk, ticket, counsellor_id, name or "counsellor")
    user = await desk.store.get_user(ticket.user_id)
    if user is None or user.telegram_id is None:
        return Relayed.NOWHERE
    return await desk.relay_to_graduate(
        ticket,
        user.telegram_id,
        source_chat_id,
        source_message_id,
        text=text,
        counsellor_name=name,
        counsellor_id=counsellor_id,
        actor=actor,
    )


# -- handlers -----------------------------------------------------------------------------


async def on_topic_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    s = _services(context)
    ticket = await _ticket_here(s, update)
    message = update.effective_message
    user = update.effective_user
    if ticket is None or message is None or user is None:
        return
    if not ticket.is_open:
        await _reply(s, message, s.messages.get("grp_ticket_closed", s.need_desk.group_lang))
        return
    await reply(
        s.need_desk,
        ticket,
        message.text,
        source_chat_id=message.chat_id,
        source_message_id=message.message_id,
        counsellor_id=user.id,
        name=counsellor_name(update),
        actor=str(Actor.counsellor(user.id)),
    )


async def on_claim(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    s = _services(context)
    ticket = await _ticket_here(s, update)
    if ticket is None or update.effective_user is None or update.effective_message is None:
        return
    if not await claim(s.need_desk, ticket, update.effective_user.id, counsellor_name(update)):
        await _already(s, update.effective_message, ticket)


async def _already(s: Services, message: Message, ticket: Ticket) -> None:
    fresh = await s.store.get_ticket(ticket.id)
    desk = s.need_desk
    if fresh is None or not fresh.is_open:
        await _reply(s, message, s.messages.get("grp_ticket_closed", desk.group_lang))
        return
    name = await assignee_name(s, fresh)
    await _reply(s, message, s.messages.get("grp_already_claimed", desk.group_lang, name=name))


async def on_resolve(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _close(update, context, rate=True)


async def on_back_to_bot(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _close(update, context, rate=False)


async def _close(update: Update, context: ContextTypes.DEFAULT_TYPE, *, rate: bool) -> None:
    s = _services(context)
    ticket = await _ticket_here(s, update)
    if ticket is None or update.effective_user is None or update.effective_message is None:
        return
    actor = str(Actor.counsellor(update.effective_user.id))
    if not await close(s.need_desk, ticket, actor, counsellor_name(update), rate=rate):
        await _reply(
            s,
            update.effective_message,
            s.messages.get("grp_ticket_closed", s.need_desk.group_lang),
        )


async def on_transfer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/transfer <counsellor id> hands the ticket over; /transfer alone puts it back in the
    queue."""
    s = _services(context)
    ticket = await _ticket_here(s, update)
    message = update.effective_message
    if ticket is None or message is None or update.effective_user is None:
        return
    desk = s.need_desk
    target: int | None = None
    if context.args:
        try:
            target = int(context.args[0].lstrip("@"))
        except ValueError:
            target = -1
        if target not in s.settings.counsellor_ids:
            await _reply(s, message, s.messages.get("grp_not_counsellor", desk.group_lang))
            return
    actor = str(Actor.counsellor(update.effective_user.id))
    if not await s.store.transfer(ticket.id, target, actor):
        fresh = await s.store.get_ticket(ticket.id)
        if fresh is not None and fresh.is_open:  # already where it was asked to go
            already = target is None and fresh.status == "queued"
            key = "grp_released" if already else "grp_not_counsellor"
            await _reply(s, message, s.messages.get(key, desk.group_lang))
            return
        await _reply(s, message, s.messages.get("grp_ticket_closed", desk.group_lang))
        return
    text = (
        s.messages.get("grp_released", desk.group_lang)
        if target is None
        else s.messages.get("grp_transferred", desk.group_lang, name=str(target))
    )
    await _reply(s, message, text)


async def on_note(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/note text: stays in the topic and the audit trail, never reaches the graduate."""
    s = _services(context)
    ticket = await _ticket_here(s, update)
    message = update.effective_message
    if ticket is None or message is None or update.effective_user is None:
        return
    note = " ".join(context.args or []).strip()
    if not note:
        await _reply(s, message, s.messages.get("grp_topic_help", s.need_desk.group_lang))
        return
    actor = str(Actor.counsellor(update.effective_user.id))
    await s.store.add_event(ticket.id, "note", actor, {"text": note[:4000]})
    await _reply(s, message, s.messages.get("grp_note_saved", s.need_desk.group_lang))


async def on_topic_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    s = _services(context)
    message = update.effective_message
    user = update.effective_user
    if message is not None and user is not None and user.id in s.settings.counsellor_ids:
        await _reply(s, message, s.messages.get("grp_topic_help", s.need_desk.group_lang))


async def on_card_button(
    update: Update, context: ContextTypes.DEFAULT_TYPE, callback: fmt.Callback
) -> None:
    """[Claim] [Send draft] [Resolve] on a ticket card: only a listed counsellor, only in
    the counsellor chat, only for the ticket of that topic."""
    s = _services(context)
    query = update.callback_query
    user = update.effective_user
    assert query is not None
    desk = s.need_desk
    message = query.message
    allowed = (
        user is not None
        and user.id in s.settings.counsellor_ids
        and message is not None
        and message.chat.id == s.settings.counsellor_chat_id
    )
    ticket = await s.store.get_ticket(callback.int_arg(0)) if allowed else None
    elsewhere = (
        ticket is not None
        and isinstance(message, Message)
        and ticket.topic_id is not None
        and message.message_thread_id not in (None, ticket.topic_id)
    )
    if elsewhere:  # a card button of one ticket cannot act on another
        ticket = None
    if user is None or ticket is None:
        logger.warning("card button refused for user %s", user.id if user else None)
        if message is not None and message.chat.type == "private" and user is not None:
            # a graduate's chat: a stale or forged button, said in their language
            graduate = await s.store.get_user(telegram_id=user.id)
            lang = await graduate_lang(s.store, graduate)
            await _answer(query, s.messages.get("tg_button_expired", lang))
            return
        await _answer(query, s.messages.get("grp_not_counsellor", desk.group_lang))
        return
    name = user.first_name or "counsellor"
    actor = str(Actor.counsellor(user.id))
    if callback.action == "claim":
        done = await claim(desk, ticket, user.id, name)
    elif callback.action == "draft":
        sent = await send_draft(desk, ticket, actor, name)
        done = sent not in (Relayed.ALREADY, Relayed.NOWHERE)
    else:
        done = await close(desk, ticket, actor, name)
    await _answer(query, None if done else await _why_not(s, ticket, callback.action))


async def assignee_name(s: Services, ticket: Ticket) -> str:
    """Who holds the ticket, by first name (escaped), else by id."""
    if ticket.assignee_telegram_id is None:
        return "?"
    if ticket.assignee_telegram_id == 0:
        return "CLI"
    user = await s.store.get_user(telegram_id=ticket.assignee_telegram_id)
    name = user.display_name if user is not None and user.display_name else None
    return fmt.escape(name) if name else str(ticket.assignee_telegram_id)


async def _why_not(s: Services, ticket: Ticket, action: str) -> str:
    """Why a ticket action did nothing: closed, already claimed, or the draft already sent."""
    fresh = await s.store.get_ticket(ticket.id)
    lang = s.need_desk.group_lang
    if fresh is None or not fresh.is_open:
        return s.messages.get("grp_ticket_closed", lang)
    if action == "claim" and fresh.assignee_telegram_id is not None:
        return s.messages.get("grp_already_claimed", lang, name=await assignee_name(s, fresh))
    if action == "draft":
        return s.messages.get("grp_draft_already_sent", lang)
    return s.messages.get("grp_ticket_closed", lang)


async def _answer(query: object, text: str | None) -> None:
    try:
        await query.answer(text)  # type: ignore[attr-defined]
    except Exception as exc:  # an expired query
        logger.debug("callback answer failed: %s", exc)
