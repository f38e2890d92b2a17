"""The handoff vocabulary (``bot.handoff.models``): one definition that the database's
constraints and the ticket trail's actors are written with."""

from __future__ import annotations

from sqlalchemy import CheckConstraint

from bot.handoff.models import (
    CATEGORIES,
    CLI,
    OPEN_STATUSES,
    PRIORITIES,
    TICKET_STATUSES,
    Actor,
)
from bot.storage.models import TicketRow


def test_actors_are_written_as_the_trail_and_audit_log_always_had_them() -> None:
    """Rows written before the Actor value existed still name the same people."""
    assert str(Actor.counsellor(777)) == "counsellor:777"
    assert str(Actor.web("li")) == "web:li"
    assert str(CLI) == "cli"


def test_the_tickets_table_accepts_exactly_the_vocabulary() -> None:
    checks = {
        str(c.name): str(c.sqltext)
        for c in TicketRow.__table__.constraints
        if isinstance(c, CheckConstraint)
    }
    for values, column in ((TICKET_STATUSES, "status"), (CATEGORIES, "category")):
        check = next(text for name, text in checks.items() if name.endswith(column))
        assert all(f"'{v}'" in check for v in values), check
    assert set(OPEN_STATUSES) < set(TICKET_STATUSES)
    assert PRIORITIES[0] == "urgent"  # the queue's order starts with the most urgent
