"""Counsellors in the forum supergroup: one topic per ticket, commands and card buttons.

Only listed counsellor ids, inside the configured counsellor chat, may act; updates from any
other group are ignored. Each handler reads the update, calls the handoff service (the same
use cases the console and ``gradguide handoffs`` call) and answers with its outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import Message, Update
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot.channels.telegram import formatting as fmt
from bot.channels.telegram.context import Context, Services
from bot.channels.telegram.gateway import DeliveryFailed
from bot.handoff import outcomes as out
from bot.handoff.directory import graduate_lang
from bot.handoff.models import Counsellor, Relayed, Source
from bot.storage.store import Ticket

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


# -- handlers -----------------------------------------------------------------------------


async def _by(s: Services, update: Update) -> Counsellor:
    """The counsellor who sent this update (a listed Telegram id: the caller checked)."""
    user = update.effective_user
    assert user is not None
    return await s.handoff.directory.telegram(user.id, counsellor_name(update))


def _why(s: Services, outcome: object) -> str | None:
    """The topic's answer to an outcome that did nothing (None: it did something)."""
    lang = s.need_desk.group_lang
    match outcome:
        case out.Closed():
            return s.messages.get("grp_ticket_closed", lang)
        case out.AlreadyClaimed(by=name):
            return s.messages.get("grp_already_claimed", lang, name=fmt.escape(name))
        case out.Delivered(relayed=Relayed.ALREADY):
            return s.messages.get("grp_draft_already_sent", lang)
        case out.NoDraft() | out.Delivered(relayed=Relayed.NOWHERE):
            return s.messages.get("grp_ticket_closed", lang)
        case out.AlreadyThere():
            return s.messages.get("grp_released", lang)
        case out.UnknownCounsellor():
            return s.messages.get("grp_not_counsellor", lang)
        case out.Empty():
            return s.messages.get("grp_topic_help", lang)
    return None


async def on_topic_message(update: Update, context: Context) -> None:
    s = context.bot_data.services
    ticket = await _ticket_here(s, update)
    message = update.effective_message
    if ticket is None or message is None:
        return
    source = Source(message.chat_id, message.message_id)
    outcome = await s.handoff.reply(ticket.id, message.text, source, await _by(s, update))
    if isinstance(outcome, out.Closed):
        await _reply(s, message, s.messages.get("grp_ticket_closed", s.need_desk.group_lang))


async def on_claim(update: Update, context: Context) -> None:
    await _act(update, context, lambda s, ticket, by: s.handoff.claim(ticket.id, by))


async def on_resolve(update: Update, context: Context) -> None:
    await _act(update, context, lambda s, ticket, by: s.handoff.resolve(ticket.id, by))


async def on_back_to_bot(update: Update, context: Context) -> None:
    await _act(update, context, lambda s, ticket, by: s.handoff.resolve(ticket.id, by, rate=False))


async def on_transfer(update: Update, context: Context) -> None:
    """/transfer <counsellor id> hands the ticket over; /transfer alone puts it back in the
    queue. The service's transition tells the topic who has it now."""
    target = context.args[0] if context.args else None
    await _act(update, context, lambda s, ticket, by: s.handoff.transfer(ticket.id, target, by))


async def on_note(update: Update, context: Context) -> None:
    """/note text: stays in the topic and the audit trail, never reaches the graduate."""
    text = " ".join(context.args or [])
    s = context.bot_data.services
    outcome = await _act(update, context, lambda s, ticket, by: s.handoff.note(ticket.id, text, by))
    if isinstance(outcome, out.NoteSaved) and update.effective_message is not None:
        await _reply(
            s, update.effective_message, s.messages.get("grp_note_saved", s.need_desk.group_lang)
        )


async def _act(
    update: Update,
    context: Context,
    use_case: Callable[[Services, Ticket, Counsellor], Awaitable[object]],
) -> object:
    """A topic command: the topic's ticket, the use case, and why it did nothing if so."""
    s = context.bot_data.services
    ticket = await _ticket_here(s, update)
    message = update.effective_message
    if ticket is None or message is None:
        return None
    outcome = await use_case(s, ticket, await _by(s, update))
    why = _why(s, outcome)
    if why is not None:
        await _reply(s, message, why)
    return outcome


async def on_topic_help(update: Update, context: Context) -> None:
    s = context.bot_data.services
    message = update.effective_message
    user = update.effective_user
    if message is not None and user is not None and user.id in s.settings.counsellor_ids:
        await _reply(s, message, s.messages.get("grp_topic_help", s.need_desk.group_lang))


async def on_card_button(update: Update, context: Context, callback: fmt.Callback) -> None:
    """[Claim] [Send draft] [Resolve] on a ticket card: only a listed counsellor, only in
    the counsellor chat, only for the ticket of that topic."""
    s = context.bot_data.services
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
    by = await _by(s, update)
    outcome: object
    if callback.action == "claim":
        outcome = await s.handoff.claim(ticket.id, by)
    elif callback.action == "draft":
        outcome = await s.handoff.send_draft(ticket.id, by)
    else:
        outcome = await s.handoff.resolve(ticket.id, by)
    await _answer(query, _why(s, outcome))


async def _answer(query: object, text: str | None) -> None:
    try:
        await query.answer(text)  # type: ignore[attr-defined]
    except Exception as exc:  # an expired query
        logger.debug("callback answer failed: %s", exc)
