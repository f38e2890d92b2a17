"""``gradguide handoffs``: counsellors without Telegram work on the same database through the
same handoff service; their replies reach the graduate through the bot (or the graduate's
terminal), queued while Telegram is unreachable."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.errors import GradGuideError
from bot.handoff import outcomes as out_
from bot.handoff.models import Relayed, Source
from bot.handoff.service import HandoffService
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.store import Store, Ticket

CLI_CHAT_ID = 0
"""Replies typed in the CLI have no Telegram message; they are numbered in their own space."""
_sequence = itertools.count()


async def run(
    settings: Settings,
    action: str,
    args: Any,
    out: Console,
    handoff: Callable[[Settings, Store, Messages], HandoffService],
) -> int:
    """``handoff`` builds the service (the composition root's ``handoff_service``)."""
    db = Database.from_settings(settings)
    try:
        await db.migrate()
        store = Store(db)
        if action == "list":
            return await _list(settings, store, args, out)
        ticket = await store.get_ticket(args.id)
        if ticket is None:
            raise GradGuideError(f"no ticket #{args.id}")
        if action == "show":
            return await _show(settings, store, ticket, out)
        service = handoff(settings, store, Messages.load())
        try:
            return await _act(service, ticket, action, args, out)
        finally:
            await service.close()
    finally:
        await db.dispose()


async def _act(
    service: HandoffService, ticket: Ticket, action: str, args: Any, out: Console
) -> int:
    """``reply`` or ``resolve`` as the command line's counsellor (a reply claims a queued
    ticket); what the graduate must hear is queued while Telegram is unreachable."""
    cli = await service.directory.cli()
    if action == "reply":
        message_id = -(int(service.store.now().timestamp() * 1000) * 10 + next(_sequence) % 10)
        source = Source(CLI_CHAT_ID, message_id)
        outcome: object = await service.reply(ticket.id, args.text, source, cli)
    else:
        outcome = await service.resolve(ticket.id, cli)
    match outcome:
        case out_.Delivered(relayed=Relayed.REFUSED):
            raise GradGuideError(f"ticket #{ticket.id}: Telegram refused the reply")
        case out_.Delivered(relayed=Relayed.QUEUED):
            out.print(
                f"ticket #{ticket.id}: reply queued (Telegram is not taking messages now): "
                "the running bot's outbox delivers it"
            )
            return 0
        case out_.Delivered(relayed=Relayed.SENT) | out_.Resolved():
            out.print(f"ticket #{ticket.id}: {action} done")
            return 0
        case out_.Empty():
            raise GradGuideError("the reply is empty: nothing was sent")
    raise GradGuideError(f"ticket #{ticket.id} is {ticket.status}: nothing was sent")


async def _list(settings: Settings, store: Store, args: Any, out: Console) -> int:
    if args.all:
        tickets = await store.list_tickets(None, limit=args.limit)
    else:
        tickets = await store.list_tickets(["queued", "assigned"], limit=args.limit)
    table = Table(title="Tickets" if args.all else "Open tickets")
    since = f"waiting since ({settings.timezone})"
    for column in ("id", "status", "priority", "category", since, "summary"):
        table.add_column(column)
    for t in tickets:
        table.add_row(
            str(t.id),
            t.status,
            t.priority,
            t.category,
            f"{settings.local_time(t.created_at):%Y-%m-%d %H:%M}",
            escape(t.summary[:60]),
        )
    out.print(table)
    return 0


async def _show(settings: Settings, store: Store, ticket: Ticket, out: Console) -> int:
    out.print(
        f"[bold]Ticket #{ticket.id}[/] · {ticket.status} · {ticket.priority} · {ticket.category}"
    )
    out.print(f"reason: {ticket.reason}")
    out.print(f"summary: {escape(ticket.summary)}")
    for turn in await store.recent_turns(ticket.conversation_id, 50):
        shown = settings.local_time(turn.created_at)
        out.print(f"[dim]{shown:%H:%M}[/] {turn.role}: {escape(turn.text)}")
    if ticket.draft_answer:
        out.print(f"[bold]draft:[/] {escape(ticket.draft_answer)}")
    for event in await store.events(ticket.id):
        shown = settings.local_time(event.created_at)
        out.print(f"[dim]{shown:%Y-%m-%d %H:%M} {event.kind} by {event.actor}[/]")
    return 0
