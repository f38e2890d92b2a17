"""What a :class:`bot.handoff.service.HandoffService` operation did, as a value.

Every operation returns one of these instead of a boolean, so a front end explains a refusal
without reading the ticket again (and without a race between the two reads)::

    Opened             a ticket waits for a counsellor (``created``: just now; ``position``)
    Claimed            the ticket is now the counsellor's
    AlreadyClaimed     another counsellor holds it (``by``: their name)
    Transferred        handed to a counsellor (``to``), or back to the queue (``to`` None)
    AlreadyThere       a transfer to where the ticket already is (back to a queue it is in)
    UnknownCounsellor  a transfer to someone who is not a counsellor
    Resolved           closed by a counsellor (the graduate asked for a rating, or not)
    Cancelled          closed by the graduate (back to the bot)
    NothingOpen        the graduate had no open ticket (to cancel, to leave contact details on)
    ContactSaved       the graduate's contact details are on their open ticket
    Delivered          a reply or the draft went on its way (``relayed``: sent, queued, …)
    NoDraft            the ticket has no draft answer to send
    NoteSaved          a note is in the ticket's trail
    Empty              nothing to write: an empty reply or note
    Rated              the graduate's rating is recorded
    NotRated           not theirs, still open, out of range or rated before
    Closed             the ticket is closed (resolved or cancelled) or does not exist
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.handoff.models import Counsellor, Relayed
from bot.storage.store import Ticket


@dataclass(frozen=True, slots=True)
class Opened:
    ticket: Ticket
    created: bool
    """False: the conversation had an open ticket already (this is it)."""
    position: int
    """Place in the queue (1 = next; 0 = a counsellor has it)."""


@dataclass(frozen=True, slots=True)
class Claimed:
    ticket: Ticket


@dataclass(frozen=True, slots=True)
class AlreadyClaimed:
    ticket: Ticket
    by: str
    """The holder's name (as colleagues know them)."""


@dataclass(frozen=True, slots=True)
class Transferred:
    ticket: Ticket
    to: Counsellor | None
    """None: back to the queue."""


@dataclass(frozen=True, slots=True)
class AlreadyThere:
    ticket: Ticket


@dataclass(frozen=True, slots=True)
class UnknownCounsellor:
    target: str
    """What was asked for, as typed."""


@dataclass(frozen=True, slots=True)
class Resolved:
    ticket: Ticket


@dataclass(frozen=True, slots=True)
class Cancelled:
    ticket: Ticket


@dataclass(frozen=True, slots=True)
class NothingOpen:
    pass


@dataclass(frozen=True, slots=True)
class ContactSaved:
    ticket: Ticket
    contact: str


@dataclass(frozen=True, slots=True)
class Delivered:
    ticket: Ticket
    relayed: Relayed

    @property
    def sent(self) -> bool:
        return self.relayed is Relayed.SENT


@dataclass(frozen=True, slots=True)
class NoDraft:
    ticket: Ticket


@dataclass(frozen=True, slots=True)
class NoteSaved:
    ticket: Ticket


@dataclass(frozen=True, slots=True)
class Empty:
    pass


@dataclass(frozen=True, slots=True)
class Rated:
    ticket: Ticket
    rating: int


@dataclass(frozen=True, slots=True)
class NotRated:
    pass


@dataclass(frozen=True, slots=True)
class Closed:
    ticket_id: int


ClaimOutcome = Claimed | AlreadyClaimed | Closed
TransferOutcome = Transferred | AlreadyThere | UnknownCounsellor | Closed
ResolveOutcome = Resolved | Closed
CancelOutcome = Cancelled | NothingOpen
ContactOutcome = ContactSaved | NothingOpen | Empty
ReplyOutcome = Delivered | Empty | Closed
DraftOutcome = Delivered | NoDraft | Closed
NoteOutcome = NoteSaved | Empty | Closed
RateOutcome = Rated | NotRated


def contact_reply(outcome: ContactOutcome) -> str:
    """What the graduate is told after ``/contact`` (a message key), in every channel."""
    match outcome:
        case ContactSaved():
            return "tg_contact_saved"
        case Empty():
            return "tg_contact_usage"
    return "tg_contact_nothing"
