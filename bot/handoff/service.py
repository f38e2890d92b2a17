"""The handoff use cases, once, for every front end.

Telegram's topic commands and card buttons, the web console and ``gradguide handoffs`` call
these methods; each changes the ticket in the database (the state machine is the store's:
one conditional UPDATE per transition, so of concurrent callers exactly one wins), then has
the front end tell whoever must hear it, and returns an outcome (:mod:`bot.handoff.outcomes`).

A front end that cannot reach its channel still lets every transition happen: what the
graduate or the desk must hear is queued (the outbox) and sent by the running bot.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from bot.agent.models import Reply
from bot.handoff import outcomes as out
from bot.handoff.directory import Directory
from bot.handoff.models import Counsellor, Relayed, Source
from bot.handoff.policy import (
    TRANSCRIPT_TURNS,
    minutes_waiting,
    queue_order,
    topic_intent,
    transcript,
    triage,
)
from bot.handoff.ports import FrontEnd, Notice
from bot.privacy import redact
from bot.settings import Settings
from bot.storage.console_store import ConsoleStore
from bot.storage.store import Store, Ticket

logger = logging.getLogger(__name__)

MAX_NOTE_CHARS = 4000
MAX_CONTACT_CHARS = 200


@dataclass
class Swept:
    """What a sweep did: the tickets whose counsellors were reminded, and those whose
    graduate was offered to go back to the bot."""

    reminded: list[int] = field(default_factory=list)
    offered: list[int] = field(default_factory=list)


class HandoffService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        front: FrontEnd,
        directory: Directory | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.front = front
        self.directory = directory or Directory(settings, store, ConsoleStore(store))
        """Who the counsellors are (by default: the configured ids and console accounts)."""

    async def close(self) -> None:
        await self.front.close()

    async def _open(self, ticket_id: int) -> Ticket | None:
        ticket = await self.store.get_ticket(ticket_id)
        return ticket if ticket is not None and ticket.is_open else None

    # -- opening ---------------------------------------------------------------------------

    async def open(
        self, user_id: int, conversation_id: int, reply: Reply, *, draft: Reply | None = None
    ) -> out.Opened:
        """A ticket for the agent's handoff (one open ticket per conversation): triaged (a
        bare "/human" takes the subject the graduate asked about before), with the recent
        transcript (personal data redacted) and the draft a counsellor checks before it goes
        out; the caller gives it a place at the desk (Telegram: its forum topic) and tells
        the graduate where they are in the queue.

        Races: two messages of one graduate handed off at once (two replicas): the store's
        unique open ticket per conversation lets one create it; the other gets it with
        ``created`` False."""
        turns = await self.store.recent_turns(conversation_id, TRANSCRIPT_TURNS)
        sort = triage(reply)
        if sort.category == "other":
            subject = topic_intent(turns)
            if subject is not None:
                sort = triage(reply.model_copy(update={"intent": subject}))
        asked = [t.text for t in turns if t.role == "graduate" and not t.text.startswith("/")]
        draft_text = draft.text if draft is not None and draft.citations else None
        citations = [c.model_dump(mode="json") for c in (draft.citations if draft else [])]
        ticket, created = await self.store.open_ticket(
            conversation_id,
            user_id,
            sort.category,
            sort.priority,
            sort.reason,
            redact(asked[-1])[:200] if asked else reply.summary,
            draft_text,
            citations,
            transcript(turns),
            signals=reply.signals,
        )
        return out.Opened(ticket, created, await self.store.queue_position(ticket.id))

    # -- counsellors ---------------------------------------------------------------------

    async def claim(self, ticket_id: int, by: Counsellor) -> out.ClaimOutcome:
        """queued → assigned to ``by``; the desk and the graduate hear it.

        Races: two counsellors claiming at once (two buttons, a button and the console):
        the store's conditional UPDATE lets one through; the other gets ``AlreadyClaimed``
        naming the winner, read after the winner's commit."""
        ticket = await self._open(ticket_id)
        if ticket is None:
            return out.Closed(ticket_id)
        if not await self.store.claim(ticket.id, by.id, str(by.actor)):
            fresh = await self._open(ticket.id)
            if fresh is None:
                return out.Closed(ticket.id)
            return out.AlreadyClaimed(fresh, await self.directory.name(fresh.assignee_id))
        await self.front.tell_counsellors(
            ticket, Notice("grp_claimed", {"name": by.name}), key=f"claimed:{ticket.id}:{by.id}"
        )
        await self.front.tell_graduate(
            ticket, Notice("tg_counsellor_joined"), key=f"joined:{ticket.id}:{by.id}"
        )
        return out.Claimed(await self._open(ticket.id) or ticket)

    async def reply(
        self, ticket_id: int, text: str | None, source: Source, by: Counsellor
    ) -> out.ReplyOutcome:
        """A counsellor's message to the graduate (``None``: a media message, copied),
        claiming a queued ticket on the way. Once per ``source``: a second submission of
        the same message is ``Delivered(ALREADY)``."""
        if text is not None and not text.strip():
            return out.Empty()
        ticket = await self._open(ticket_id)
        if ticket is None:
            return out.Closed(ticket_id)
        if ticket.status == "queued":
            await self.claim(ticket.id, by)
        relayed = await self.front.relay_reply(ticket, text, source, by)
        return out.Delivered(ticket, relayed)

    async def send_draft(self, ticket_id: int, by: Counsellor) -> out.DraftOutcome:
        """The bot's draft, checked by a counsellor, to the graduate: durable with its turn,
        the ticket's first response and the audit event in one transaction, then sent.

        Races: a double tap, or the button and the console at once: the outbox's keys
        (``draft:<ticket>:<part>``) let exactly one caller queue it; the others get
        ``Delivered(ALREADY)`` and send nothing."""
        ticket = await self._open(ticket_id)
        if ticket is None:
            return out.Closed(ticket_id)
        draft = ticket.draft_answer
        if not draft:
            return out.NoDraft(ticket)
        if any(event.kind == "draft_sent" for event in await self.store.events(ticket.id)):
            return out.Delivered(ticket, Relayed.ALREADY)
        store = self.store

        async def record(tx: AsyncSession) -> None:
            await store.mark_first_response(ticket.id, session=tx)
            await store.add_turn(ticket.conversation_id, "counsellor", draft, session=tx)
            await store.add_event(ticket.id, "draft_sent", str(by.actor), {}, session=tx)

        relayed = await self.front.send_answer(
            ticket, draft, key=f"draft:{ticket.id}", record=record
        )
        if relayed not in (Relayed.ALREADY, Relayed.NOWHERE):
            await self.front.tell_counsellors(
                ticket, Notice("grp_draft_sent", {"name": by.name}), key=f"draft-sent:{ticket.id}"
            )
        return out.Delivered(ticket, relayed)

    async def note(self, ticket_id: int, text: str, by: Counsellor) -> out.NoteOutcome:
        """A note in the ticket's trail (open or closed); never reaches the graduate."""
        body = text.strip()
        if not body:
            return out.Empty()
        ticket = await self.store.get_ticket(ticket_id)
        if ticket is None:
            return out.Closed(ticket_id)
        await self.store.add_event(
            ticket.id, "note", str(by.actor), {"text": body[:MAX_NOTE_CHARS]}
        )
        return out.NoteSaved(ticket)

    async def transfer(
        self, ticket_id: int, target: str | int | None, by: Counsellor
    ) -> out.TransferOutcome:
        """Hand an open ticket to another counsellor (``target``: their id on tickets, or as
        typed in Telegram, see :meth:`Directory.find`), or back to the queue (``None``, ""
        or "queue"). One rule for every front end: the target is someone
        :class:`Directory` knows. The desk hears who has it now; the graduate hears that
        another counsellor (by name, when names are visible) or the queue has it."""
        to: Counsellor | None = None
        if target not in (None, "", "queue"):
            assert target is not None
            to = await self.directory.find(target)
            if to is None:
                return out.UnknownCounsellor(str(target))
        ticket = await self._open(ticket_id)
        if ticket is None:
            return out.Closed(ticket_id)
        if not await self.store.transfer(ticket.id, to.id if to else None, str(by.actor)):
            fresh = await self._open(ticket.id)
            return out.Closed(ticket.id) if fresh is None else out.AlreadyThere(fresh)
        stamp = f"{ticket.id}:{to.id if to else 'queue'}:{self.store.now().timestamp():.3f}"
        if to is None:
            desk, graduate = Notice("grp_released"), Notice("tg_requeued")
        else:
            desk = Notice("grp_transferred", {"name": to.name})
            visible = self.settings.counsellor_names_visible
            graduate = (
                Notice("tg_transferred_named", {"name": to.name})
                if visible
                else Notice("tg_transferred")
            )
        await self.front.tell_counsellors(ticket, desk, key=f"transfer:{stamp}")
        await self.front.tell_graduate(ticket, graduate, key=f"transfer-told:{stamp}")
        return out.Transferred(await self._open(ticket.id) or ticket, to)

    async def resolve(
        self, ticket_id: int, by: Counsellor, *, rate: bool = True
    ) -> out.ResolveOutcome:
        """Close as resolved: the desk hears it and the thread closes, the graduate is told
        the bot answers again and (``rate``) is asked for a 1–5 rating. ``rate=False`` is
        "back to the bot": handed back without a rating."""
        ticket = await self.store.get_ticket(ticket_id)
        if ticket is None or not await self.store.resolve(ticket.id, str(by.actor)):
            return out.Closed(ticket_id)
        key = "grp_resolved" if rate else "grp_back_to_bot"
        await self.front.tell_counsellors(
            ticket, Notice(key, {"name": by.name}), key=f"{key}:{ticket.id}"
        )
        await self.front.close_thread(ticket)
        await self.front.tell_graduate(ticket, Notice("tg_resolved"), key=f"resolved:{ticket.id}")
        if rate:
            await self.front.ask_rating(ticket)
        return out.Resolved(ticket)

    async def queue(self, limit: int = 500) -> list[Ticket]:
        """The open tickets in the order counsellors should take them."""
        tickets = await self.store.list_tickets(["queued", "assigned"], limit=limit)
        return sorted(tickets, key=queue_order)

    async def sweep(self) -> Swept:
        """The service-level checks, run every minute by every replica: a ticket waiting
        past ``GRADGUIDE_SLA_REMIND_MINUTES`` alerts all counsellors and tells the graduate,
        once, that it is taking long; one waiting past ``GRADGUIDE_SLA_GIVEUP_HOURS`` offers
        the graduate to go back to the bot.

        Races: replicas sweeping at once: each ticket's mark (``mark_reminded``,
        ``mark_long_wait_notified``, ``mark_giveup_offered``) is a conditional UPDATE that
        one of them wins; only the winner says anything."""
        store, settings = self.store, self.settings
        now = store.now()
        swept = Swept()
        remind_after = dt.timedelta(minutes=settings.sla_remind_minutes)
        for ticket in await store.tickets_needing_reminder(now, remind_after):
            if not await store.mark_reminded(ticket.id):
                continue  # another replica has it
            minutes = minutes_waiting(ticket.created_at, now)
            notice = Notice("grp_sla_reminder", {"ticket_id": ticket.id, "minutes": minutes})
            await self.front.alert_counsellors(ticket, notice, key=f"sla:{ticket.id}")
            swept.reminded.append(ticket.id)
            if await store.mark_long_wait_notified(ticket.id):
                await self.front.tell_graduate(
                    ticket,
                    Notice("tg_long_wait", {"minutes": minutes}),
                    key=f"long-wait:{ticket.id}",
                )
        giveup_after = dt.timedelta(hours=settings.sla_giveup_hours)
        for ticket in await store.tickets_needing_giveup_offer(now, giveup_after):
            if not await store.mark_giveup_offered(ticket.id):
                continue
            hours = f"{settings.sla_giveup_hours:g}"
            notice = Notice("tg_giveup_offer", {"hours": hours})
            await self.front.offer_back_to_bot(ticket, notice, key=f"giveup:{ticket.id}")
            swept.offered.append(ticket.id)
        return swept

    # -- graduates -----------------------------------------------------------------------

    async def cancel(
        self, user_id: int, ticket_id: int | None = None, *, forgetting: bool = False
    ) -> out.CancelOutcome:
        """The graduate leaves the queue (or a counsellor): their open ticket (or the one
        named, if it is theirs and open) is cancelled, the desk hears it (``forgetting``:
        because they asked to be forgotten) and the thread closes. The caller tells the
        graduate."""
        if ticket_id is None:
            conversation = await self.store.load_conversation(user_id)
            ticket = await self.store.open_ticket_for(conversation.id)
        else:
            ticket = await self._open(ticket_id)
        if ticket is None or ticket.user_id != user_id:
            return out.NothingOpen()
        if not await self.store.cancel(ticket.id, "graduate"):
            return out.NothingOpen()
        if forgetting:
            notice, key = Notice("grp_graduate_forgot"), f"forgot:{ticket.id}"
        else:
            notice, key = Notice("grp_graduate_cancelled"), f"cancelled:{ticket.id}"
        await self.front.tell_counsellors(ticket, notice, key=key)
        await self.front.close_thread(ticket)
        return out.Cancelled(ticket)

    async def leave_contact(self, user_id: int, contact: str) -> out.ContactOutcome:
        """Contact details (a phone number, an e-mail) for a counsellor to get back to the
        graduate when the wait is long, on their open ticket (at most 200 characters). The
        front end shows them to counsellors its own way."""
        text = contact.strip()[:MAX_CONTACT_CHARS]
        conversation = await self.store.load_conversation(user_id)
        ticket = await self.store.open_ticket_for(conversation.id)
        if ticket is None:
            return out.NothingOpen()
        if not text:
            return out.Empty()
        await self.store.set_contact(ticket.id, text)
        return out.ContactSaved(ticket, text)

    async def rate(self, user_id: int, ticket_id: int, rating: int) -> out.RateOutcome:
        """The graduate's 1–5 rating of their closed ticket; only the first counts."""
        ticket = await self.store.get_ticket(ticket_id)
        if ticket is None or ticket.user_id != user_id or ticket.is_open:
            return out.NotRated()
        if not 1 <= rating <= 5 or not await self.store.set_rating(ticket.id, rating):
            return out.NotRated()
        await self.front.tell_counsellors(
            ticket, Notice("grp_rating", {"rating": rating}), key=f"rating:{ticket.id}"
        )
        return out.Rated(ticket, rating)
