"""The counsellor desk on Telegram: tickets become forum topics, messages are relayed both
ways exactly once, and every step lands in the ticket's audit trail.

Used by the handlers, the background jobs and ``gradguide handoffs`` (which relays through
the bot without running it).

**Durable sends.** An answer or a relay, once decided, is written to the outbox *before*
the first attempt to send it — in the same transaction that records it (the answer with
``Store.finish_exchange``; a relay with its link, ``_reserve``) — leased to this process
for ``GRADGUIDE_CHAT_LEASE_S``. Then ``deliver`` sends it (the gateway waits out 429s and
retries 5xx and timeouts, the lease renewed meanwhile) and marks it sent. If Telegram keeps
failing, the outbox job takes it over (``hand_over``). If the process dies at any point,
the row is still there, pending: once the lease has passed, the outbox job of any process
(this one restarted, or another replica) sends it.

**What "exactly once" cannot cover.** The Bot API has no idempotency key: a message cannot
be sent "only if it was not sent already". If the process dies after Telegram accepted a
message but before the row is marked sent — the time it takes Telegram's answer to travel
back plus one short transaction (``Store.mark_sent``, started the moment the answer
arrives, a few milliseconds) — the row is still pending and the outbox job sends the
message a second time. The same holds when Telegram carried out a request whose answer
timed out (the gateway retries it). Everywhere else a crash ends with the message sent
once: before the row is committed nothing was sent and nothing recorded (the update is
processed again); after it is marked sent it is never sent again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from telegram import Message

from bot.agent.models import Citation
from bot.channels.telegram import formatting as fmt
from bot.channels.telegram.gateway import (
    DeliveryFailed,
    Gateway,
    is_thread_missing,
    is_topic_closed,
)
from bot.channels.telegram.lease import LeaseLost, SendLease
from bot.errors import StorageError
from bot.handoff.directory import graduate_lang, lang_of
from bot.handoff.models import Relayed
from bot.kb.models import Lang
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.store import (
    HANDED_TO_OUTBOX,
    Direction,
    NewTurn,
    OutboxItem,
    Send,
    Store,
    Ticket,
    User,
)

logger = logging.getLogger(__name__)

HTML = "HTML"
MAX_ATTEMPTS = 20
"""An outbox item is given up (status 'dead', logged at ERROR) after this many failures."""


def retry_delay(attempts: int) -> dt.timedelta:
    """How long a failed outbox item waits before its next try: 2, 4, 8 … s, at most 5 min."""
    return dt.timedelta(seconds=min(300, 2**attempts))


def message_payload(
    chat_id: int, text: str, *, thread_id: int | None = None, reply_markup: Any = None
) -> dict[str, Any]:
    """``sendMessage``'s parameters for one HTML message, as ``Desk.send`` sends it (no
    link preview), for the outbox."""
    payload: dict[str, Any] = {
        "chat_id": chat_id,
        "text": text,
        "parse_mode": HTML,
        "link_preview_options": {"is_disabled": True},
    }
    if thread_id is not None:
        payload["message_thread_id"] = thread_id
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup.to_dict()
    return payload


@dataclass
class UpdateInProgress:
    """The update the current handler is processing (set by ``once``; None outside the
    bot: ``gradguide handoffs``, the console)."""

    update_id: int
    finished: bool = False
    """Marked done in the transaction that made its relay durable (``_reserve``)."""


current_update: ContextVar[UpdateInProgress | None] = ContextVar("gradguide_update", default=None)


@dataclass
class Delivery:
    """What ``Desk.send_queued`` did with outbox items."""

    results: list[Any] = field(default_factory=list)
    """Telegram's answers for the items sent (each marked sent), in order."""
    failed: DeliveryFailed | None = None
    """Why the next item was not sent: it and those after it are still the caller's
    (``Desk.hand_over``)."""
    lost: bool = False
    """The items not sent are no longer the caller's: their lease ran out."""

    @property
    def message_id(self) -> int | None:
        """The message id of the last item sent (a copy's, or a message's)."""
        if not self.results or not isinstance(self.results[-1], dict):
            return None
        value = self.results[-1].get("message_id")
        return int(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class TopicOutcome:
    """What :meth:`Desk.open_topic` did: the ticket (with its topic when one was made), and
    ``refused`` when Telegram refused the topic outright (the group is not a forum, the bot
    lost its rights or was removed): retrying cannot help until an admin fixes the group.
    A passing failure (network, 5xx, 429) is neither: the ticket waits for a retry."""

    ticket: Ticket
    refused: DeliveryFailed | None = None


class Desk:
    def __init__(
        self, settings: Settings, store: Store, gateway: Gateway, messages: Messages
    ) -> None:
        self.settings = settings
        self.store = store
        self.gateway = gateway
        self.messages = messages
        self.group_lang: Lang = "zh"
        """Language of the counsellor group's cards and notices."""

    @property
    def group_id(self) -> int | None:
        return self.settings.counsellor_chat_id

    @property
    def send_lease(self) -> dt.timedelta:
        """How long an outbox item this process queued or took is its own to send (renewed
        while it sends): the chat lease's length, the time a dead process holds anything."""
        return dt.timedelta(seconds=self.settings.chat_lease_s)

    # -- sending ------------------------------------------------------------------------

    async def send(
        self,
        chat_id: int,
        text: str,
        *,
        thread_id: int | None = None,
        reply_markup: Any = None,
        what: str = "sendMessage",
    ) -> Message:
        """One HTML message (callers split long texts), retried on transient errors."""
        return await self.gateway.run(
            what,
            lambda: self.gateway.bot.send_message(
                chat_id,
                text,
                parse_mode=HTML,
                message_thread_id=thread_id,
                reply_markup=reply_markup,
                disable_web_page_preview=True,
            ),
        )

    async def say(
        self, chat_id: int, html: str, *, reply_markup: Any = None, key: str | None = None
    ) -> Message | None:
        """A message of any length: split below Telegram's limit (``say_parts``)."""
        return await self.say_parts(
            chat_id, fmt.split_html(html), reply_markup=reply_markup, key=key
        )

    async def say_parts(
        self,
        chat_id: int,
        parts: list[str],
        *,
        reply_markup: Any = None,
        key: str | None = None,
    ) -> Message | None:
        """The parts in order, the keyboard on the last one. When Telegram keeps failing,
        the part and the ones after it go to the outbox under ``key``, the keyboard still on
        the last (without ``key``, or when Telegram refuses the message outright, the
        failure is logged)."""
        sent: Message | None = None
        for index, part in enumerate(parts):
            markup = reply_markup if index == len(parts) - 1 else None
            try:
                sent = await self.send(chat_id, part, reply_markup=markup)
            except DeliveryFailed as exc:
                if exc.permanent or key is None:
                    logger.warning("could not send to chat %s: %s", chat_id, exc)
                    return None
                for later, rest in enumerate(parts[index:], start=index):
                    payload: dict[str, Any] = {"chat_id": chat_id, "text": rest, "parse_mode": HTML}
                    if later == len(parts) - 1 and reply_markup is not None:
                        payload["reply_markup"] = reply_markup.to_dict()
                    await self.store.enqueue(f"{key}:{later}", "sendMessage", payload)
                return None
        return sent

    async def send_or_queue(
        self, key: str, chat_id: int, text: str, *, thread_id: int | None = None, **extra: Any
    ) -> bool:
        """Send now; if Telegram keeps failing, put it in the outbox (retried by a job)."""
        try:
            await self.send(chat_id, text, thread_id=thread_id, **extra)
            return True
        except DeliveryFailed as exc:
            if exc.permanent:
                logger.warning("message %s refused by Telegram: %s", key, exc)
                return False
            payload = message_payload(
                chat_id, text, thread_id=thread_id, reply_markup=extra.get("reply_markup")
            )
            await self.store.enqueue(key, "sendMessage", payload)
            logger.warning("message %s queued for a later retry: %s", key, exc)
            return False

    # -- durable sends (see the module docs) ------------------------------------------------

    async def deliver(self, items: Sequence[OutboxItem]) -> Delivery:
        """Send outbox items this process holds (just queued, or taken by ``Store.due``),
        in order, each marked sent once Telegram took it; if Telegram keeps failing, the
        rest is handed to the outbox job (``hand_over``)."""
        delivery = await self.send_queued(items)
        if delivery.failed is not None:
            await self.hand_over(items[len(delivery.results) :], delivery.failed)
        return delivery

    async def send_queued(self, items: Sequence[OutboxItem]) -> Delivery:
        """Send outbox items in order until one fails (``Delivery.failed``: it and the
        rest are still the caller's), marking each sent. Their lease is renewed while this
        takes (a 429 waited out); an item whose lease was lost is not sent."""
        delivery = Delivery()
        if not items:
            return delivery
        lease = SendLease(self.store, items, self.send_lease)
        lease.start()
        try:
            for item in items:
                try:
                    lease.check(item.id)()
                    result = await self.gateway.call(
                        item.method, dict(item.payload), before_attempt=lease.check(item.id)
                    )
                except DeliveryFailed as exc:
                    delivery.failed = exc
                    break
                except LeaseLost:
                    logger.warning("outbox item %s: lease lost, left to the outbox", item.id)
                    delivery.lost = True
                    break
                lease.sent(item.id)
                try:
                    await self.store.mark_sent(item.id)
                except StorageError as exc:  # sent: the outbox may send it once more
                    logger.warning("outbox item %s sent but not marked: %s", item.id, exc)
                delivery.results.append(result)
        finally:
            await lease.stop()
        return delivery

    async def hand_over(
        self, items: Sequence[OutboxItem], error: DeliveryFailed
    ) -> dt.datetime | None:
        """The first of ``items`` failed to send: the outbox job tries it again after a
        pause, and the rest after it (in order); returns when. When Telegram refused it on
        its merits (a bad request, a blocked bot) or after ``MAX_ATTEMPTS``, none of them
        is sent: they are given up ('dead'), and None is returned."""
        if not items:
            return None
        first, rest = items[0], [item.id for item in items[1:]]
        attempts = first.attempts + 1
        if (
            is_thread_missing(error)
            and first.payload.get("message_thread_id") is not None
            and attempts < MAX_ATTEMPTS
        ):
            # The topic was deleted (a counsellor, or the outbox job sending what a lapsed
            # lease left behind with the old topic): what was meant for it goes to the
            # group itself, at once, as it would without a topic — never given up.
            now = self.store.now()
            to_group = {k: v for k, v in first.payload.items() if k != "message_thread_id"}
            async with self.store.transaction() as tx:
                await self.store.mark_failed(first.id, str(error), now, dead=False, session=tx)
                await self.store.move_item(first.id, to_group, now, session=tx)
                await self.store.postpone(rest, now, session=tx)
            logger.warning("outbox item %s: topic gone, sent to the group", first.dedupe_key)
            return now
        dead = error.permanent or attempts >= MAX_ATTEMPTS
        retry_at = self.store.now() + retry_delay(attempts)
        async with self.store.transaction() as tx:
            await self.store.mark_failed(first.id, str(error), retry_at, dead=dead, session=tx)
            if dead:
                for item_id in rest:
                    await self.store.mark_failed(
                        item_id, "an earlier part was refused", retry_at, dead=True, session=tx
                    )
            else:
                await self.store.postpone(rest, retry_at, session=tx)
        if dead:
            logger.error("outbox item %s given up: %s", first.dedupe_key, error)
            return None
        logger.warning("outbox item %s left to the outbox: %s", first.dedupe_key, error)
        return retry_at

    async def _reserve(
        self,
        ticket: Ticket,
        direction: Direction,
        source: tuple[int, int],
        target_chat_id: int,
        sends: Sequence[Send],
        *,
        turn: NewTurn | None = None,
        first_response: bool = False,
    ) -> list[OutboxItem] | None:
        """A relay, decided and durable in one transaction before its first send: the link
        (final at once: ``HANDED_TO_OUTBOX``), the outbox items (leased to this process),
        the transcript's ``turn``, the ticket's first response, and — inside a bot update —
        the update marked done (a process that dies after this leaves nothing to resume:
        the outbox job sends the items once the lease has passed). None (nothing written)
        when the message was already relayed: of concurrent callers for one message, the
        link's unique key lets exactly one through."""
        store = self.store
        async with store.transaction() as tx:
            reserved = await store.claim_link(
                ticket.id,
                direction,
                source[0],
                source[1],
                target_chat_id,
                HANDED_TO_OUTBOX,
                stale_after=self._relay_takeover,
                session=tx,
            )
            if not reserved:
                return None
            items = await store.queue(sends, lease=self.send_lease, session=tx)
            if turn is not None:
                await store.add_turn(ticket.conversation_id, turn.role, turn.text, session=tx)
            if first_response:
                await store.mark_first_response(ticket.id, session=tx)
            update = current_update.get()
            if update is not None:
                await store.finish_update(update.update_id, session=tx)
        if update is not None:
            update.finished = True
        return items

    # -- tickets ------------------------------------------------------------------------

    async def ensure_topic(
        self, ticket: Ticket, *, student: str, user: User | None, replace: bool = False
    ) -> Ticket:
        """A forum topic named like ``#42 · 权益 · 张同学`` with the ticket card, created once.
        Without a counsellor group the ticket waits for ``gradguide handoffs``."""
        opened = await self.open_topic(ticket, student=student, user=user, replace=replace)
        return opened.ticket

    async def open_topic(
        self, ticket: Ticket, *, student: str, user: User | None, replace: bool = False
    ) -> TopicOutcome:
        """:meth:`ensure_topic`, saying whether Telegram refused the topic outright."""
        group = self.group_id
        if group is None or (ticket.topic_id is not None and not replace):
            return TopicOutcome(ticket)
        lang = self.group_lang
        name = fmt.topic_name(
            ticket.id, fmt.category_label(ticket.category, lang, self.messages), student
        )
        try:
            topic = await self.gateway.run(
                "createForumTopic",
                lambda: self.gateway.bot.create_forum_topic(group, name),
            )
        except DeliveryFailed as exc:
            if exc.permanent:
                logger.error("ticket #%d: Telegram refused its topic: %s", ticket.id, exc)
                return TopicOutcome(ticket, refused=exc)
            logger.warning("ticket #%d: no topic yet (%s); the job will retry", ticket.id, exc)
            return TopicOutcome(ticket)
        won = await self.store.set_topic(
            ticket.id, group, topic.message_thread_id, name, replace=replace
        )
        if not won:  # another worker made the topic first: ours goes
            await self._quietly(
                "deleteForumTopic",
                lambda: self.gateway.bot.delete_forum_topic(group, topic.message_thread_id),
            )
            fresh = await self.store.get_ticket(ticket.id)
            return TopicOutcome(fresh if fresh is not None else ticket)
        ticket = await self._require(ticket.id)
        await self.post_card(ticket, student=student, user=user)
        return TopicOutcome(await self._require(ticket.id))

    async def alert_admins(self, ticket: Ticket, refused: DeliveryFailed) -> None:
        """Every admin hears, in a private chat, that a ticket could not reach the group and
        how to find the fix (best effort: a failure is logged)."""
        reason = fmt.escape(str(refused.cause)[:300])
        for admin_id in self.settings.admin_ids:
            user = await self.store.get_user(telegram_id=admin_id)
            text = self.messages.get(
                "adm_ticket_undelivered", lang_of(user), ticket_id=ticket.id, reason=reason
            )
            await self._quietly(
                "sendMessage",
                lambda chat=admin_id, text=text: self.gateway.bot.send_message(
                    chat, text, parse_mode="HTML"
                ),
            )

    async def post_card(self, ticket: Ticket, *, student: str, user: User | None) -> None:
        assert self.group_id is not None and ticket.topic_id is not None
        lang = self.group_lang
        citations = [Citation.model_validate(c) for c in ticket.citations]
        card = fmt.TicketCard(
            ticket_id=ticket.id,
            category=ticket.category,
            priority=ticket.priority,
            reason=ticket.reason,
            student=student,
            graduate_lang=await graduate_lang(self.store, user),
            region=user.region if user else None,
            summary=ticket.summary,
            transcript=tuple((t["role"], t["text"]) for t in ticket.transcript),
            draft=ticket.draft_answer,
            citations=tuple(citations),
            signals=tuple(ticket.signals or ()),
        )
        text = fmt.render_ticket_card(card, lang, self.messages)
        keyboard = fmt.card_keyboard(
            ticket.id, lang, self.messages, has_draft=bool(ticket.draft_answer)
        )
        try:
            message = await self.send(
                self.group_id, text, thread_id=ticket.topic_id, reply_markup=keyboard
            )
        except DeliveryFailed as exc:
            logger.warning("ticket #%d: card not posted: %s", ticket.id, exc)
            return
        await self.store.set_card_message(ticket.id, message.message_id)

    async def _require(self, ticket_id: int) -> Ticket:
        ticket = await self.store.get_ticket(ticket_id)
        assert ticket is not None, ticket_id
        return ticket

    async def _quietly(self, what: str, make: Any) -> None:
        try:
            await self.gateway.run(what, make)
        except DeliveryFailed as exc:
            logger.info("%s failed (ignored): %s", what, exc)

    # -- relays -------------------------------------------------------------------------

    async def relay_to_counsellors(
        self, ticket: Ticket, chat_id: int, message_id: int, *, student: str, user: User | None
    ) -> Relayed:
        """Copy one graduate message into the ticket's topic, once: durable in the outbox
        before the first attempt (``_reserve``), then sent. A deleted topic is recreated
        (if that fails too, the copy goes to the group itself, as without a topic); a
        failure is left to the outbox job, never dropped.

        Races: of several callers relaying the same message (a replayed update, a resumed
        one, another replica) exactly one reserves it (``Store.claim_link``); the others
        get ``ALREADY`` and send nothing."""
        if self.group_id is None:
            return Relayed.NOWHERE
        if ticket.topic_id is None:
            ticket = await self.ensure_topic(ticket, student=student, user=user)
            if ticket.topic_id is None:
                return await self._queue_copy(ticket, chat_id, message_id)
        copy = Send(
            f"copy:{chat_id}:{message_id}",
            "copyMessage",
            self._copy_payload(chat_id, message_id, ticket.topic_id),
            ticket.id,
        )
        items = await self._reserve(
            ticket, "to_counsellors", (chat_id, message_id), self.group_id, [copy]
        )
        if not items:
            return Relayed.ALREADY
        delivery = await self.send_queued(items)
        if delivery.failed is not None and is_thread_missing(delivery.failed):
            gone = ticket.topic_id
            ticket = await self.ensure_topic(ticket, student=student, user=user, replace=True)
            # into the new topic; or, when Telegram would not make one, into the group
            thread = ticket.topic_id if ticket.topic_id != gone else None
            payload = self._copy_payload(chat_id, message_id, thread)
            until = self.store.now() + self.send_lease
            if await self.store.move_item(items[0].id, payload, until):
                items = [replace(items[0], payload=payload, next_attempt_at=until)]
                delivery = await self.send_queued(items)
        if delivery.failed is not None:
            await self.hand_over(items, delivery.failed)
            error = {"error": str(delivery.failed)[:500]}
            await self.store.add_event(ticket.id, "relay_failed", "bot", error)
            return Relayed.REFUSED if delivery.failed.permanent else Relayed.QUEUED
        if delivery.lost:
            return Relayed.QUEUED
        async with self.store.transaction() as tx:
            if delivery.message_id is not None:
                await self.store.complete_link(
                    "to_counsellors", chat_id, message_id, delivery.message_id, session=tx
                )
            await self.store.add_event(
                ticket.id,
                "message_from_graduate",
                "graduate",
                {"message_id": message_id},
                session=tx,
            )
        return Relayed.SENT

    def _copy_payload(self, chat_id: int, message_id: int, thread_id: int | None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "chat_id": self.group_id,
            "from_chat_id": chat_id,
            "message_id": message_id,
        }
        if thread_id is not None:
            payload["message_thread_id"] = thread_id
        return payload

    async def _queue_copy(self, ticket: Ticket, chat_id: int, message_id: int) -> Relayed:
        """No topic to copy into yet: the outbox job copies it (into the group), once
        (``ALREADY`` if it is queued already: the outbox's key)."""
        async with self.store.transaction() as tx:
            queued = await self.store.enqueue(
                f"copy:{chat_id}:{message_id}",
                "copyMessage",
                self._copy_payload(chat_id, message_id, ticket.topic_id),
                ticket_id=ticket.id,
                session=tx,
            )
            if not queued:
                return Relayed.ALREADY
            error = {"error": "no topic"}
            await self.store.add_event(ticket.id, "relay_failed", "bot", error, session=tx)
        return Relayed.QUEUED

    @property
    def _relay_takeover(self) -> dt.timedelta:
        """When a relay reserved but never completed may be taken over: its replica died
        mid-send, and the update is being processed again. That happens only once the
        update's chat lease ran out, which is at least two thirds of a lease after the
        reservation (the lease is renewed every third of it): half a lease is always
        past, while a live replica keeps its chat, so its update is not processed twice.
        (Only links reserved without the outbox, by an older version, are ever taken over:
        ``_reserve`` writes the link final.)"""
        return dt.timedelta(seconds=self.settings.chat_lease_s / 2)

    async def relay_to_graduate(
        self,
        ticket: Ticket,
        graduate_chat_id: int,
        source_chat_id: int,
        source_message_id: int,
        *,
        text: str | None,
        counsellor_name: str | None,
        counsellor_id: int | None,
        actor: str,
    ) -> Relayed:
        """A counsellor's message, to the graduate, once: text with the counsellor label,
        media copied as they are. Durable in the outbox (with the transcript's turn) before
        the first attempt (``_reserve``), then sent; a failure is left to the outbox job,
        and one Telegram refuses is reported in the topic.

        Races: of several callers relaying the same message (a replayed or resumed update,
        another replica) exactly one reserves it (``Store.claim_link``); the others get
        ``ALREADY`` and send nothing."""
        lang = await graduate_lang(self.store, await self.store.get_user(ticket.user_id))
        key = f"to-graduate:{source_chat_id}:{source_message_id}"
        sends: list[Send] = []
        if text is not None:
            shown = fmt.escape(text)
            if self.settings.counsellor_names_visible and counsellor_name:
                body = self.messages.get(
                    "tg_counsellor_named", lang, name=fmt.escape(counsellor_name), text=shown
                )
            else:
                body = self.messages.get("tg_counsellor_says", lang, text=shown)
            for index, part in enumerate(fmt.split_html(body)):
                payload = message_payload(graduate_chat_id, part)
                sends.append(Send(f"{key}:{index}", "sendMessage", payload, ticket.id))
        else:
            copy = {
                "chat_id": graduate_chat_id,
                "from_chat_id": source_chat_id,
                "message_id": source_message_id,
            }
            sends.append(Send(key, "copyMessage", copy, ticket.id))
        items = await self._reserve(
            ticket,
            "to_graduate",
            (source_chat_id, source_message_id),
            graduate_chat_id,
            sends,
            turn=NewTurn("counsellor", text or "[media]"),
            first_response=True,
        )
        if not items:
            return Relayed.ALREADY
        delivery = await self.send_queued(items)
        if delivery.failed is not None:
            exc = delivery.failed
            await self.hand_over(items[len(delivery.results) :], exc)
            await self.store.add_event(ticket.id, "relay_failed", actor, {"error": str(exc)[:500]})
            if exc.permanent and ticket.topic_id is not None and self.group_id is not None:
                await self.send_or_queue(
                    f"relay-failed:{source_chat_id}:{source_message_id}",
                    self.group_id,
                    self.messages.get(
                        "grp_relay_failed", self.group_lang, error=fmt.escape(str(exc.cause))
                    ),
                    thread_id=ticket.topic_id,
                )
            return Relayed.REFUSED if exc.permanent else Relayed.QUEUED
        if delivery.lost:
            return Relayed.QUEUED
        async with self.store.transaction() as tx:
            if delivery.message_id is not None:
                await self.store.complete_link(
                    "to_graduate",
                    source_chat_id,
                    source_message_id,
                    delivery.message_id,
                    session=tx,
                )
            await self.store.add_event(
                ticket.id,
                "message_to_graduate",
                actor,
                {"counsellor": counsellor_id, "message_id": source_message_id},
                session=tx,
            )
        return Relayed.SENT

    # -- closing ------------------------------------------------------------------------

    async def close_topic(self, ticket: Ticket) -> None:
        group, thread = self.group_id, ticket.topic_id
        if group is None or thread is None:
            return
        await self._quietly(
            "closeForumTopic", lambda: self.gateway.bot.close_forum_topic(group, thread)
        )

    async def notify_topic(self, ticket: Ticket, key: str, text: str) -> None:
        """A notice in the ticket's topic (a rating arrives after the resolve)."""
        if self.group_id is not None and ticket.topic_id is not None:
            await self.send_to_topic(self.group_id, ticket.topic_id, text, key=key)

    async def send_to_topic(
        self, group: int, thread: int, text: str, *, key: str | None = None
    ) -> None:
        """A notice in a topic; a closed topic is reopened for it and closed again. What
        Telegram keeps failing goes to the outbox under ``key`` (else it is logged)."""
        try:
            await self.send(group, text, thread_id=thread)
            return
        except DeliveryFailed as exc:
            if not is_topic_closed(exc):
                if key is not None:
                    await self.send_or_queue(key, group, text, thread_id=thread)
                else:
                    logger.warning("topic notice failed: %s", exc)
                return
        bot = self.gateway.bot
        await self._quietly("reopenForumTopic", lambda: bot.reopen_forum_topic(group, thread))
        if key is not None:
            await self.send_or_queue(key, group, text, thread_id=thread)
        else:
            with contextlib.suppress(DeliveryFailed):
                await self.send(group, text, thread_id=thread)
        await self._quietly("closeForumTopic", lambda: bot.close_forum_topic(group, thread))

    def topic_link(self, ticket: Ticket) -> str:
        """A t.me link that opens the ticket's topic (for a supergroup id -100…)."""
        group = str(self.group_id or "")
        if ticket.topic_id is None or not group.startswith("-100"):
            return f"#{ticket.id}"
        return f"https://t.me/c/{group[4:]}/{ticket.topic_id}"

    async def waiting_since(self, ticket: Ticket) -> dt.timedelta:
        return self.store.now() - ticket.created_at
