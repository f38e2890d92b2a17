"""What a handoff is about and how urgent it is, and when counsellors are at their desks.

Channel-free: the Telegram channel, the CLI and (later) the web console share these rules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from bot.agent.models import HandoffReason, Intent, Reply
from bot.handoff.models import PRIORITIES, Category, Priority
from bot.privacy import redact
from bot.storage.store import Ticket, TurnRecord

TRANSCRIPT_TURNS = 12
"""Recent turns copied into a ticket for the counsellor."""


@dataclass(frozen=True)
class Triage:
    category: Category
    priority: Priority
    reason: str


def triage(reply: Reply) -> Triage:
    """Crisis is urgent; rights problems (contracts, wages, fraud) are high; the rest normal."""
    reason = (reply.handoff_reason or HandoffReason.REQUESTED).value
    if reply.intent is Intent.CRISIS or reply.handoff_reason is HandoffReason.CRISIS:
        return Triage("crisis", "urgent", reason)
    if reply.intent is Intent.RIGHTS or reply.handoff_reason is HandoffReason.SENSITIVE:
        return Triage("rights", "high", reason)
    if reply.intent is Intent.POLICY:
        return Triage("policy", "normal", reason)
    if reply.intent is Intent.PROCEDURE:
        return Triage("procedure", "normal", reason)
    return Triage("other", "normal", reason)


def topic_intent(turns: list[TurnRecord]) -> Intent | None:
    """The subject of the conversation so far: the last answered turn's intent."""
    for turn in reversed(turns):
        if turn.role == "bot" and turn.intent in {i.value for i in Intent}:
            intent = Intent(turn.intent)
            if intent in (Intent.POLICY, Intent.RIGHTS, Intent.PROCEDURE):
                return intent
    return None


def transcript(turns: list[TurnRecord]) -> list[dict[str, str]]:
    """The recent turns as stored on a ticket: role, text (personal data redacted), time."""
    return [
        {"role": t.role, "text": redact(t.text), "at": t.created_at.isoformat()}
        for t in turns[-TRANSCRIPT_TURNS:]
    ]


def minutes_waiting(created_at: dt.datetime, now: dt.datetime) -> int:
    return max(0, int((now - created_at).total_seconds() // 60))


def queue_order(ticket: Ticket) -> tuple[bool, int, dt.datetime]:
    """Waiting tickets before assigned ones; then the most urgent; then the oldest."""
    return (ticket.status != "queued", PRIORITIES.index(ticket.priority), ticket.created_at)


SlaState = Literal["ok", "warn", "late"]


def sla_state(ticket: Ticket, now: dt.datetime, remind_minutes: int) -> SlaState:
    """Late once a queued ticket has waited past the reminder time (or an assigned one has
    no reply yet by then); a warning from half that time; ok once a counsellor answered."""
    if ticket.status == "assigned" and ticket.first_response_at is not None:
        return "ok"
    waited = (now - ticket.created_at).total_seconds() / 60
    if waited >= remind_minutes:
        return "late"
    if waited >= remind_minutes / 2:
        return "warn"
    return "ok"
