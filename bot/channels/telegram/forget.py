"""/forget in Telegram: the graduate's rows go, and so do the bot's messages carrying their
words in the counsellor group — every ticket topic of theirs, closed ones too.

The rows and the plan of what to delete in Telegram are written in one transaction
(``Erasures.forget``: one *erasure* per chat or topic); then the erasures are carried out at
once, and the graduate is told what happened (``Erased``). Whatever Telegram does not do
now (429, 5xx, timeouts, or this process dying) the ``erasures`` job does later: an erasure
is a row in the database until it is done, like an outbox item.

In a topic: ``deleteMessages`` (the ticket card, the copies of the graduate's messages, the
contact notice; at most 100 ids a call), then the topic is renamed ("#42 · data deleted").
Telegram lets a bot delete only messages sent in the last 48 hours: when it refuses, the
topic is deleted whole (``deleteForumTopic``, which needs the ``can_delete_messages`` right);
when it refuses that too, the counsellors are asked in the group to delete the topic by hand
and the graduate is told so (``Erased.FAILED``). Every step is idempotent (see
``bot.storage.erasures``), so one carried out twice does no harm.

The bot's copies of the graduate's messages are known by ``message_links``: a copy the
outbox job sends records its id there too (``record_copy``), and so does the notice with
the contact details a graduate leaves (``post_contact``).
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

from bot.channels.telegram import formatting as fmt
from bot.channels.telegram.desk import MAX_ATTEMPTS, message_payload, retry_delay
from bot.channels.telegram.gateway import DeliveryFailed, is_thread_missing
from bot.kb.models import Lang
from bot.storage.erasures import BATCH, Erasure, Erasures, Step
from bot.storage.store import HANDED_TO_OUTBOX, OutboxItem, Send, Ticket, User

if TYPE_CHECKING:
    from bot.channels.telegram.context import Services

logger = logging.getLogger(__name__)

ERASE_EVERY_S = 5.0
"""How often the job looks for erasures Telegram did not let through at once."""


class Erased(enum.Enum):
    """What became of the bot's copies of a forgotten graduate's messages (``erase``)."""

    NOTHING = "nothing"
    """They never reached the counsellor group: nothing to delete there."""
    DELETED = "deleted"
    """Every copy is deleted (some, perhaps, with their whole topic)."""
    PENDING = "pending"
    """Telegram kept failing (429, 5xx, timeouts): the job carries on."""
    FAILED = "failed"
    """Telegram refused to delete some, and their topic: the counsellors were asked to
    delete them by hand."""


DONE_MESSAGE = {
    Erased.NOTHING: "tg_forget_done",
    Erased.DELETED: "tg_forget_done_group",
    Erased.PENDING: "tg_forget_done_pending",
    Erased.FAILED: "tg_forget_done_failed",
}


# -- the graduate's side ---------------------------------------------------------------------


async def on_answer(s: Services, user: User, lang: Lang, chat_id: int, yes: bool) -> None:
    """The graduate's yes or no to /forget. Yes: an open ticket is cancelled (its topic
    told and closed), the rows are deleted and the erasures planned (``Erasures.forget``),
    carried out at once, and the graduate told what became of the copies."""
    desk = s.need_desk
    if not yes:
        await desk.say(chat_id, s.messages.get("tg_forget_cancelled", lang))
        return
    await s.handoff.cancel(user.id, forgetting=True)
    forgotten = await Erasures(s.store).forget(user.id, lease=desk.send_lease)
    outcome = await erase(s, forgotten.erasures)
    logger.info(
        "user %d forgotten: %s; copies in the group: %s", user.id, forgotten.counts, outcome
    )
    await desk.say(chat_id, s.messages.get(DONE_MESSAGE[outcome], lang))


# -- carrying erasures out -------------------------------------------------------------------


async def erase(s: Services, erasures: tuple[Erasure, ...] | list[Erasure]) -> Erased:
    """Carry out erasures this process holds; what became of them, together."""
    if not erasures:
        return Erased.NOTHING
    steps = [Step((await erase_one(s, erasure)).step) for erasure in erasures]
    if Step.FAILED in steps:
        return Erased.FAILED
    if any(step is not Step.DONE for step in steps):
        return Erased.PENDING
    return Erased.DELETED


async def erase_due(s: Services) -> int:
    """The job: erasures whose time has come (Telegram failed earlier, or the process that
    planned them died), leased to this process and carried out; how many finished."""
    book = Erasures(s.store)
    due = await book.due(s.store.now(), lease=s.need_desk.send_lease)
    finished = 0
    for erasure in due:
        if not (await erase_one(s, erasure)).pending:
            finished += 1
    return finished


async def erase_one(s: Services, erasure: Erasure) -> Erasure:
    """Take one erasure as far as Telegram lets it now: done, failed (the counsellors
    asked to do it by hand), or still pending with its next attempt recorded."""
    book = Erasures(s.store)
    while erasure.pending:
        step = Step(erasure.step)
        try:
            erasure = await _carry_out(s, book, erasure, step)
        except DeliveryFailed as exc:
            if not exc.permanent and erasure.attempts + 1 < MAX_ATTEMPTS:
                at = s.store.now() + retry_delay(erasure.attempts + 1)
                await book.retry(erasure, str(exc), at)
                logger.warning("erasure %d (%s) left to the job: %s", erasure.id, step, exc)
                fresh = await book.get(erasure.id)
                return fresh if fresh is not None else erasure
            erasure = await _refused(s, book, erasure, step, exc)
    return erasure


async def _carry_out(s: Services, book: Erasures, erasure: Erasure, step: Step) -> Erasure:
    """One step; the erasure as recorded after it (progress is recorded batch by batch)."""
    gateway = s.need_desk.gateway
    chat, thread = erasure.chat_id, erasure.thread_id
    if step is Step.MESSAGES:
        ids = list(erasure.message_ids)
        while ids:
            await gateway.call("deleteMessages", {"chat_id": chat, "message_ids": ids[:BATCH]})
            ids = ids[BATCH:]
            if ids:
                erasure = await book.advance(erasure, Step.MESSAGES, ids)
        if thread is None:
            return await book.advance(erasure, Step.DONE)
        return await book.advance(erasure, Step.TOPIC if erasure.whole else Step.RENAME)
    assert thread is not None, erasure
    if step is Step.TOPIC:
        await gateway.call("deleteForumTopic", {"chat_id": chat, "message_thread_id": thread})
        return await book.advance(erasure, Step.DONE)
    label = s.messages.get("grp_topic_forgotten", s.need_desk.group_lang)
    name = fmt.topic_name(erasure.ticket_number, label, "")
    await gateway.call(
        "editForumTopic", {"chat_id": chat, "message_thread_id": thread, "name": name}
    )
    return await book.advance(erasure, Step.DONE)


def _gone(exc: DeliveryFailed) -> bool:
    """The topic is not there any more (someone deleted it)."""
    return is_thread_missing(exc) or "topic_id_invalid" in str(exc.cause).lower()


async def _refused(
    s: Services, book: Erasures, erasure: Erasure, step: Step, exc: DeliveryFailed
) -> Erasure:
    """Telegram refused the step (or kept failing ``MAX_ATTEMPTS`` times): the next way."""
    if step is Step.MESSAGES and erasure.thread_id is not None:
        logger.warning("erasure %d: messages refused (%s); deleting the topic", erasure.id, exc)
        return await book.advance(erasure, Step.TOPIC)
    if step is Step.RENAME or (step is Step.TOPIC and _gone(exc)):
        if step is Step.RENAME and not (_gone(exc) or "not_modified" in str(exc).lower()):
            logger.warning("erasure %d: topic not renamed: %s", erasure.id, exc)
        return await book.advance(erasure, Step.DONE)
    logger.error("erasure %d: Telegram refused to delete the copies: %s", erasure.id, exc)
    notice = _notice(s, erasure, exc)
    items = await book.give_up(erasure, str(exc), notice, lease=s.need_desk.send_lease)
    await _deliver(s, items)
    fresh = await book.get(erasure.id)
    return fresh if fresh is not None else erasure


def _notice(s: Services, erasure: Erasure, exc: DeliveryFailed) -> Send:
    """The counsellors' request to delete by hand what the bot could not, in the group
    itself (a closed topic takes no message; every admin sees the group)."""
    desk = s.need_desk
    group = str(erasure.chat_id)
    if erasure.thread_id is not None and group.startswith("-100"):
        link = f"https://t.me/c/{group[4:]}/{erasure.thread_id}"
    else:
        link = f"#{erasure.ticket_number}"
    text = s.messages.get(
        "grp_erase_failed",
        desk.group_lang,
        ticket_id=erasure.ticket_number,
        link=fmt.escape(link),
        error=fmt.escape(str(exc.cause)),
    )
    key = f"erase-failed:{erasure.id}:{int(erasure.created_at.timestamp())}"
    return Send(key, "sendMessage", message_payload(erasure.chat_id, text))


async def _deliver(s: Services, items: list[OutboxItem]) -> None:
    if items:
        await s.need_desk.deliver(items)


# -- knowing the copies ----------------------------------------------------------------------


def copied_from(item: OutboxItem) -> tuple[int, int] | None:
    """The graduate's message an outbox item copies into the counsellor group (a relay,
    ``copy:{chat}:{message}``, or the contact notice, ``contact:{chat}:{message}``)."""
    kind, _, rest = item.dedupe_key.partition(":")
    if kind not in ("copy", "contact") or item.ticket_id is None:
        return None
    chat, _, message = rest.partition(":")
    try:
        return int(chat), int(message)
    except ValueError:
        return None


async def record_copy(s: Services, item: OutboxItem, message_id: int | None) -> None:
    """The outbox job delivered a copy: its id goes on the relay's link (made now if the
    copy was queued without one: no topic yet), so that /forget can delete it by id."""
    source = copied_from(item)
    target = item.payload.get("chat_id")
    if source is None or message_id is None or item.ticket_id is None or target is None:
        return
    store = s.store
    if not await store.complete_link("to_counsellors", source[0], source[1], message_id):
        await store.record_link(
            item.ticket_id, "to_counsellors", source[0], source[1], int(target), message_id
        )


async def post_contact(
    s: Services, ticket: Ticket, chat_id: int, message_id: int, contact: str
) -> None:
    """The contact details a graduate left (/contact), in the ticket's topic, once: durable
    in the outbox with a link to the /contact message (so /forget finds the notice), then
    sent (``Desk._reserve`` for a relay does the same)."""
    desk, store = s.need_desk, s.store
    group, thread = desk.group_id, ticket.topic_id
    if group is None or thread is None:
        return
    text = s.messages.get("grp_contact", desk.group_lang, contact=fmt.escape(contact))
    send = Send(
        f"contact:{chat_id}:{message_id}",
        "sendMessage",
        message_payload(group, text, thread_id=thread),
        ticket.id,
    )
    async with store.transaction() as tx:
        claimed = await store.claim_link(
            ticket.id,
            "to_counsellors",
            chat_id,
            message_id,
            group,
            HANDED_TO_OUTBOX,
            session=tx,
        )
        if not claimed:
            return  # a replayed update: the notice is on its way already
        items = await store.queue([send], lease=desk.send_lease, session=tx)
    delivery = await desk.deliver(items)
    if delivery.failed is None and delivery.message_id is not None:
        await store.complete_link("to_counsellors", chat_id, message_id, delivery.message_id)
