"""When a handler fails: logged (personal data redacted by the log filter), and the
graduate told in their language, once per update — never a traceback, never silence."""

from __future__ import annotations

import contextlib
import logging

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.channels.telegram.context import Context
from bot.channels.telegram.gateway import DeliveryFailed
from bot.channels.telegram.graduates import guess_lang, services_of
from bot.channels.telegram.webhook import unclaimed_update
from bot.errors import GradGuideError, UpdateNotClaimed

logger = logging.getLogger(__name__)


def _first_apology(context: Context, update_id: int) -> bool:
    """The graduate is told about an update once, even when a handler and then ``done``
    both fail (the database went away mid-update): the application remembers the latest
    updates it apologised for."""
    told = context.bot_data.apologised
    if update_id in told:
        return False
    told[update_id] = None
    if len(told) > 1000:
        told.popitem(last=False)
    return True


async def on_error(update: object, context: Context) -> None:
    """Log the failure (personal data is redacted by the log filter) and tell the graduate
    in their language — never a traceback, never silence.

    An update that could not be claimed (the database is down) is not processed. In
    webhook mode it is tried again and then delivered again by Telegram, so the graduate
    is told once, on the last try of its first delivery (``webhook.unclaimed_update``),
    and it is answered once the database is back; in long polling it is lost, and they
    are told at once."""
    error = context.error
    tell, key = True, "tg_error"
    if isinstance(error, UpdateNotClaimed):
        unclaimed = unclaimed_update(update)
        tell = unclaimed.tell
        if unclaimed.later:  # Telegram delivers it again: no need to send it again
            key = "tg_error_later"
        if not unclaimed.later:
            logger.error("handler failed: %s", error)
        elif unclaimed.final:
            logger.warning("%s; Telegram will deliver it again", error)
        else:
            logger.debug("%s; trying again", error)
    elif isinstance(error, GradGuideError):
        logger.error("handler failed: %s", error)
    else:
        logger.error("handler failed", exc_info=error)
    if (
        tell
        and isinstance(update, Update)
        and update.effective_chat is not None
        and update.effective_chat.type == "private"
        and _first_apology(context, update.update_id)
    ):
        s = services_of(context)
        text = getattr(update.effective_message, "text", None)
        lang = guess_lang(None, update.effective_user, text)
        with contextlib.suppress(DeliveryFailed):
            await s.need_desk.send(update.effective_chat.id, s.messages.get(key, lang))
    if isinstance(error, UpdateNotClaimed):
        raise ApplicationHandlerStop  # no handler may act on an update nobody claimed
