"""The counsellor desk on Telegram: tickets become forum topics, messages are relayed both
ways exactly once, and every step lands in the ticket's audit trail.

Used by the handlers, the background jobs and ``gradguide handoffs`` (which relays through
the bot without running it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Message

from bot.agent.models import Citation, Reply
from bot.agent.redact import redact
from bot.channels.telegram import formatting as fmt
from bot.channels.telegram.gateway import (
    DeliveryFailed,
    Gateway,
    is_thread_missing,
    is_topic_closed,
)
from bot.handoff.policy import topic_intent, transcript, triage
from bot.kb.models import Lang
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.store import HANDED_TO_OUTBOX, Store, Ticket, User

logger = logging.getLogger(__name__)

HTML = "HTML"


@dataclass(frozen=True)
class Handoff:
    ticket: Ticket
    created: bool
    position: int


def lang_of(user: User | None, fallback: Lang = "zh") -> Lang:
    if user is not None and user.lang in ("zh", "en"):
        return "zh" if user.lang == "zh" else "en"
    return fallback


async def graduate_lang(store: Store, user: User | None) -> Lang:
    """The graduate's chosen language; else the language they last wrote in; else zh."""
    if user is None or user.lang in ("zh", "en"):
        return lang_of(user)
    conversation = await store.load_conversation(user.id)
    for turn in reversed(await store.recent_turns(conversation.id, 20)):
        if turn.role == "graduate" and turn.lang in ("zh", "en"):
            return "en" if turn.lang == "en" else "zh"
    return "zh"


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
            payload: dict[str, Any] = {"chat_id": chat_id, "text": text, "parse_mode": HTML}
            if thread_id is not None:
                payload["message_thread_id"] = thread_id
            await self.store.enqueue(key, "sendMessage", payload)
            logger.warning("message %s queued for a later retry: %s", key, exc)
            return False

    # -- tickets ------------------------------------------------------------------------

    async def open(
        self,
        user: User,
        conversation_id: int,
        reply: Reply,
        *,
        draft: Reply | None = None,
        student: str,
    ) -> Handoff:
        """Store a ticket (one open ticket per conversation) and say where the graduate is
        in the queue; the caller then gives it a topic (``ensure_topic``)."""
        turns = await self.store.recent_turns(conversation_id, 12)
        sort = triage(reply)
        if sort.category == "other":  # "/human": the subject is what they asked before
            subject = topic_intent(turns)
            if subject is not None:
                sort = triage(reply.model_copy(update={"intent": subject}))
        asked = [t.text for t in turns if t.role == "graduate" and not t.text.startswith("/")]
        draft_text = draft.text if draft is not None and draft.citations else None
        citations = [c.model_dump(mode="json") for c in (draft.citations if draft else [])]
        ticket, created = await self.store.open_ticket(
            conversation_id,
            user.id,
            sort.category,
            sort.priority,
            sort.reason,
            redact(asked[-1])[:200] if asked else reply.summary,
            draft_text,
            citations,
            transcript(turns),
        )
        position = await self.store.queue_position(ticket.id)
        return Handoff(ticket, created, position)

    async def ensure_topic(
        self, ticket: Ticket, *, student: str, user: User | None, replace: bool = False
    ) -> Ticket:
        """A forum topic named like ``#42 · 权益 · 张同学`` with the ticket card, created once.
        Without a counsellor group the ticket waits for ``gradguide handoffs``."""
        group = self.group_id
        if group is None or (ticket.topic_id is not None and not replace):
            return ticket
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
            logger.warning("ticket #%d: no topic yet (%s); the job will retry", ticket.id, exc)
            return ticket
        won = await self.store.set_topic(
            ticket.id, group, topic.message_thread_id, name, replace=replace
        )
        if not won:  # another worker made the topic first: ours goes
            await self._quietly(
                "deleteForumTopic",
                lambda: self.gateway.bot.delete_forum_topic(group, topic.message_thread_id),
            )
            fresh = await self.store.get_ticket(ticket.id)
            return fresh if fresh is not None else ticket
        ticket = await self._require(ticket.id)
        await self.post_card(ticket, student=student, user=user)
        return await self._require(ticket.id)

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
    ) -> bool:
        """Copy one graduate message into the ticket's topic, once. A deleted topic is
        recreated; a failure is queued in the outbox, never dropped."""
        if self.group_id is None:
            return False
        if ticket.topic_id is None:
            ticket = await self.ensure_topic(ticket, student=student, user=user)
            if ticket.topic_id is None:
                return await self._queue_copy(ticket, chat_id, message_id)
        if not await self.store.claim_link(
            ticket.id,
            "to_counsellors",
            chat_id,
            message_id,
            self.group_id,
            stale_after=self._relay_takeover,
        ):
            return False  # already relayed (a replayed update, or another replica)
        for attempt in (1, 2):
            try:
                copied = await self._copy(chat_id, message_id, self.group_id, ticket.topic_id)
            except DeliveryFailed as exc:
                if attempt == 1 and is_thread_missing(exc):
                    ticket = await self.ensure_topic(
                        ticket, student=student, user=user, replace=True
                    )
                    continue
                # the outbox sends it: the link is final, so that the update processed
                # again (its replica died) does not copy it a second time
                async with self.store.transaction() as tx:
                    await self.store.complete_link(
                        "to_counsellors", chat_id, message_id, HANDED_TO_OUTBOX, session=tx
                    )
                    return await self._queue_copy(
                        ticket, chat_id, message_id, error=str(exc), session=tx
                    )
            await self.store.complete_link("to_counsellors", chat_id, message_id, copied)
            await self.store.add_event(
                ticket.id, "message_from_graduate", "graduate", {"message_id": message_id}
            )
            return True
        return False

    async def _copy(self, chat_id: int, message_id: int, to_chat: int, thread: int | None) -> int:
        result = await self.gateway.run(
            "copyMessage",
            lambda: self.gateway.bot.copy_message(
                to_chat, chat_id, message_id, message_thread_id=thread
            ),
        )
        return int(result.message_id)

    async def _queue_copy(
        self,
        ticket: Ticket,
        chat_id: int,
        message_id: int,
        *,
        error: str = "no topic",
        session: AsyncSession | None = None,
    ) -> bool:
        payload: dict[str, Any] = {
            "chat_id": self.group_id,
            "from_chat_id": chat_id,
            "message_id": message_id,
        }
        if ticket.topic_id is not None:
            payload["message_thread_id"] = ticket.topic_id
        await self.store.enqueue(
            f"copy:{chat_id}:{message_id}",
            "copyMessage",
            payload,
            ticket_id=ticket.id,
            session=session,
        )
        await self.store.add_event(
            ticket.id, "relay_failed", "bot", {"error": error[:500]}, session=session
        )
        return False

    @property
    def _relay_takeover(self) -> dt.timedelta:
        """When a relay reserved but never completed may be taken over: its replica died
        mid-send, and the update is being processed again. That happens only once the
        update's chat lease ran out, which is at least two thirds of a lease after the
        reservation (the lease is renewed every third of it): half a lease is always
        past, while a live replica keeps its chat, so its update is not processed twice."""
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
    ) -> bool:
        """A counsellor's message, to the graduate, once: text with the counsellor label,
        media copied as they are."""
        lang = await graduate_lang(self.store, await self.store.get_user(ticket.user_id))
        if not await self.store.claim_link(
            ticket.id,
            "to_graduate",
            source_chat_id,
            source_message_id,
            graduate_chat_id,
            stale_after=self._relay_takeover,
        ):
            return False
        parts: list[str] = []
        if text is not None:
            shown = fmt.escape(text)
            if self.settings.counsellor_names_visible and counsellor_name:
                body = self.messages.get(
                    "tg_counsellor_named", lang, name=fmt.escape(counsellor_name), text=shown
                )
            else:
                body = self.messages.get("tg_counsellor_says", lang, text=shown)
            parts = fmt.split_html(body)
        sent_id = 0
        done = 0
        try:
            if text is not None:
                for part in parts:
                    sent_id = (await self.send(graduate_chat_id, part)).message_id
                    done += 1
            else:
                sent_id = await self._copy(
                    source_chat_id, source_message_id, graduate_chat_id, None
                )
        except DeliveryFailed as exc:
            await self.store.add_event(ticket.id, "relay_failed", actor, {"error": str(exc)[:500]})
            if exc.permanent:
                await self.store.release_link("to_graduate", source_chat_id, source_message_id)
                if ticket.topic_id is not None and self.group_id is not None:
                    await self.send_or_queue(
                        f"relay-failed:{source_chat_id}:{source_message_id}",
                        self.group_id,
                        self.messages.get(
                            "grp_relay_failed", self.group_lang, error=fmt.escape(str(exc.cause))
                        ),
                        thread_id=ticket.topic_id,
                    )
                return False
            # Not delivered yet: what is left goes to the outbox, part by part, and the link
            # is final (in the same transaction) so the message is never relayed twice.
            key = f"to-graduate:{source_chat_id}:{source_message_id}"
            async with self.store.transaction() as tx:
                await self.store.complete_link(
                    "to_graduate", source_chat_id, source_message_id, HANDED_TO_OUTBOX, session=tx
                )
                if text is not None:
                    for index, part in enumerate(parts[done:], start=done):
                        await self.store.enqueue(
                            f"{key}:{index}",
                            "sendMessage",
                            {"chat_id": graduate_chat_id, "text": part, "parse_mode": HTML},
                            ticket_id=ticket.id,
                            session=tx,
                        )
                else:
                    await self.store.enqueue(
                        key,
                        "copyMessage",
                        {
                            "chat_id": graduate_chat_id,
                            "from_chat_id": source_chat_id,
                            "message_id": source_message_id,
                        },
                        ticket_id=ticket.id,
                        session=tx,
                    )
            await self.store.mark_first_response(ticket.id)
            await self.store.add_turn(ticket.conversation_id, "counsellor", text or "[media]")
            return False
        await self.store.complete_link("to_graduate", source_chat_id, source_message_id, sent_id)
        await self.store.mark_first_response(ticket.id)
        await self.store.add_turn(ticket.conversation_id, "counsellor", text or "[media]")
        await self.store.add_event(
            ticket.id,
            "message_to_graduate",
            actor,
            {"counsellor": counsellor_id, "message_id": source_message_id},
        )
        return True

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
