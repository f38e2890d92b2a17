"""The counsellors' pages: the live queue, a ticket (transcript, summary, draft, citations,
the graduate's attachments, notes), and its actions — reply, claim, transfer, resolve, note,
propose a curated answer — plus canned replies. Ticket actions call the handoff service, the
same use cases as a counsellor's command in the ticket's Telegram topic; they work while
Telegram is unreachable (what the graduate must hear waits in the outbox)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from bot.handoff import outcomes as out
from bot.handoff.models import CATEGORIES, CLI, Actor, Counsellor, Relayed, Source
from bot.handoff.policy import SlaState, sla_state
from bot.kb.models import Lang
from bot.storage.console_store import Account
from bot.storage.store import Ticket, TurnRecord
from bot.web import attachments as files
from bot.web.app import (
    MAX_ID,
    Viewer,
    WebServices,
    counsellor,
    lang_of,
    redirect,
    render,
    services_of,
)
from bot.web.security import new_token

logger = logging.getLogger(__name__)

router = APIRouter()

WEB_CHAT_ID = -1
"""The relay's "source chat" of console replies (no Telegram chat has this id)."""
MAX_REPLY_CHARS = 4000


def web_message_id(nonce: str) -> int:
    """A stable message id for one reply form: submitting it twice relays it once."""
    return int(hashlib.sha256(nonce.encode()).hexdigest()[:15], 16)


@dataclass(frozen=True)
class QueueRow:
    ticket: Ticket
    waiting: dt.timedelta
    sla: SlaState
    """The colour of the row."""
    assignee: str | None
    graduate: str


async def counsellor_names(s: WebServices, lang: Lang = "zh") -> dict[int, str]:
    """Ticket assignee ids → names: every counsellor who is or was one (the command line,
    ``gradguide handoffs``, by its name in ``lang``)."""
    everyone = await s.handoff.directory.everyone(inactive=True)
    cli = s.messages.get("web_actor_cli", lang)
    return {i: cli if c.actor == CLI else c.name for i, c in everyone.items()}


async def actor_names(s: WebServices, lang: Lang) -> dict[str, str]:
    """A trail's or the audit log's actors → names: ``counsellor:<telegram id>``,
    ``web:<user>`` and ``<role>:<user>`` (console accounts); and, for trails written before
    counsellors were one identity, ``counsellor:-<account id>``."""
    found: dict[str, str] = {}
    for person in (await s.handoff.directory.everyone(inactive=True)).values():
        if person.telegram_id is not None:
            found[str(Actor.counsellor(person.telegram_id))] = person.name
    for account in await s.console.accounts():
        found[str(Actor.web(account.username))] = account.display_name
        found[f"{account.role}:{account.username}"] = account.display_name
        found[str(Actor.counsellor(-account.id))] = account.display_name
    return found


async def _graduate_name(s: WebServices, ticket: Ticket) -> str:
    user = await s.store.get_user(ticket.user_id)
    return (user.display_name if user else None) or f"#{ticket.user_id}"


async def queue_rows(s: WebServices, lang: Lang) -> list[QueueRow]:
    tickets = await s.handoff.queue()
    now = s.store.now()
    names = await counsellor_names(s, lang)
    rows = []
    for ticket in tickets:
        assignee = ticket.assignee_id
        rows.append(
            QueueRow(
                ticket=ticket,
                waiting=now - ticket.created_at,
                sla=sla_state(ticket, now, s.settings.sla_remind_minutes),
                assignee=None if assignee is None else names.get(assignee, str(assignee)),
                graduate=await _graduate_name(s, ticket),
            )
        )
    return rows


@router.get("/queue")
async def queue(request: Request, viewer: Viewer = counsellor) -> Response:
    s = services_of(request)
    return render(
        request,
        "queue.html",
        rows=await queue_rows(s, lang_of(request)),
        refresh_s=s.settings.web_queue_refresh_s,
    )


@router.get("/queue/rows")
async def queue_fragment(request: Request, viewer: Viewer = counsellor) -> Response:
    """The queue's table body, fetched again every few seconds by static/console.js."""
    s = services_of(request)
    return render(request, "_queue_rows.html", rows=await queue_rows(s, lang_of(request)))


@router.get("/history")
async def history(request: Request, viewer: Viewer = counsellor) -> Response:
    """Closed tickets (resolved or cancelled), searchable by summary and filtered by
    category, rating and period: what was asked before, and how it went."""
    s = services_of(request)
    params = request.query_params
    days = {"7": 7, "30": 30, "90": 90, "365": 365}.get(params.get("days", ""), 30)
    category = params.get("category", "")
    category = category if category in CATEGORIES else ""
    rating_text = params.get("rating", "")
    rating = int(rating_text) if rating_text in ("1", "2", "3", "4", "5") else None
    text = params.get("q", "")[:100]
    tickets = await s.console.closed_tickets(
        s.store.now() - dt.timedelta(days=days), text=text, category=category, rating=rating
    )
    names = await counsellor_names(s, lang_of(request))
    rows = [
        (
            t,
            await _graduate_name(s, t),
            None if t.assignee_id is None else names.get(t.assignee_id),
        )
        for t in tickets
    ]
    return render(
        request,
        "history.html",
        rows=rows,
        days=days,
        category=category,
        rating=rating_text if rating is not None else "",
        query=text,
        categories=CATEGORIES,
    )


async def _ticket(s: WebServices, ticket_id: int) -> Ticket:
    ticket = await s.store.get_ticket(ticket_id)
    if ticket is None:
        raise HTTPException(404)
    return ticket


def _turns_since(turns: list[TurnRecord], ticket: Ticket) -> list[TurnRecord]:
    return [t for t in turns if t.created_at >= ticket.created_at]


@router.get("/tickets/{ticket_id}")
async def ticket_page(request: Request, ticket_id: int, viewer: Viewer = counsellor) -> Response:
    s = services_of(request)
    ticket = await _ticket(s, ticket_id)
    turns = _turns_since(await s.store.recent_turns(ticket.conversation_id, 200), ticket)
    events = await s.store.events(ticket.id)
    lang = lang_of(request)
    names = await counsellor_names(s, lang)
    me = await acting(s, viewer.account)
    everyone = await s.handoff.directory.everyone()
    targets = {cid: c.name for cid, c in everyone.items() if cid != me.id}
    last_reply = next((t.text for t in reversed(turns) if t.role == "counsellor"), "")
    doc_ids = sorted({str(c.get("doc_id")) for c in ticket.citations if c.get("doc_id")})
    all_docs = sorted(d.meta.id for d in await s.run(s.kb.documents))
    user = await s.store.get_user(ticket.user_id)
    topic_link = None
    if ticket.topic_id is not None and ticket.topic_chat_id is not None:
        group = str(ticket.topic_chat_id)
        if group.startswith("-100"):
            topic_link = f"https://t.me/c/{group[4:]}/{ticket.topic_id}"
    return render(
        request,
        "ticket.html",
        ticket=ticket,
        graduate=await _graduate_name(s, ticket),
        graduate_lang=(user.lang if user else None) or "",
        region=(user.region if user else None) or "",
        turns=turns,
        events=events,
        notes=[e for e in events if e.kind == "note"],
        assignee=None if ticket.assignee_id is None else names.get(ticket.assignee_id),
        mine=ticket.assignee_id == me.id,
        targets=sorted(targets.items(), key=lambda item: item[1]),
        canned=await s.console.canned(),
        nonce=new_token(),
        last_reply=last_reply,
        doc_ids=doc_ids,
        all_docs=all_docs,
        topic_link=topic_link,
        attachments=await s.console.attachments(ticket.id),
        is_image=files.is_image,
        format_size=files.format_size,
        waited=s.store.now() - ticket.created_at,
        actor_names=await actor_names(s, lang),
        flash=request.query_params.get("msg"),
    )


@router.get("/tickets/{ticket_id}/attachments/{attachment_id}")
async def attachment(
    request: Request,
    ticket_id: int,
    attachment_id: int,
    download: bool = False,
    viewer: Viewer = counsellor,
) -> Response:
    """A graduate's file, fetched from Telegram and streamed: images inline (the page's
    thumbnails) unless ``?download=1``, everything else as a download. Downloads are
    audited (thumbnails are not: the ticket page shows them)."""
    s = services_of(request)
    found = await s.console.get_attachment(attachment_id)
    if found is None or found.ticket_id != ticket_id:
        raise HTTPException(404)
    if download:
        await s.console.audit(
            viewer.account, "attachment_download", f"ticket:{ticket_id}", {"attachment": found.id}
        )
    try:
        remote = await files.open_file(s.settings, found.file_id)
    except files.FileUnavailable as exc:
        logger.warning(
            "attachment %d of ticket #%d not fetched from Telegram: %s", found.id, ticket_id, exc
        )
        return render(
            request,
            "error.html",
            502,
            message_key="web_attachment_unavailable",
            detail_key="web_attachment_unavailable_hint",
            back=f"/tickets/{ticket_id}",
            back_key="web_back_to_ticket",
        )
    inline = files.is_image(found) and not download
    return StreamingResponse(
        remote.chunks(),
        media_type=files.content_type(found),
        headers=files.response_headers(found, remote, inline=inline),
        background=BackgroundTask(remote.close),
    )


def _back(ticket_id: int, message: str) -> Response:
    return redirect(f"/tickets/{ticket_id}?msg={message}")


async def acting(s: WebServices, account: Account) -> Counsellor:
    """The console account as the counsellor acting on a ticket."""
    return await s.handoff.directory.account(account)


DELIVERY_NOTICES: dict[Relayed, str] = {
    Relayed.SENT: "web_reply_sent",
    Relayed.QUEUED: "web_reply_queued",
    Relayed.REFUSED: "web_reply_refused",
}


def notice_of(outcome: object) -> str:
    """The page's notice (a ``web_*`` message key) for what a ticket action did."""
    match outcome:
        case out.Delivered(relayed=relayed):
            return DELIVERY_NOTICES.get(relayed, "web_reply_not_sent")
        case out.Claimed():
            return "web_claimed"
        case out.AlreadyClaimed():
            return "web_already_claimed"
        case out.Transferred():
            return "web_transferred"
        case out.AlreadyThere():
            return "web_already_queued"
        case out.UnknownCounsellor():
            return "web_transfer_unknown"
        case out.Resolved():
            return "web_resolved"
        case out.NoteSaved():
            return "web_note_saved"
        case out.Empty():
            return "web_reply_empty"
    return "web_ticket_closed"


@router.post("/tickets/{ticket_id}/reply")
async def reply(
    request: Request,
    ticket_id: int,
    text: Annotated[str, Form(max_length=MAX_REPLY_CHARS)] = "",
    canned_id: Annotated[str, Form()] = "",
    nonce: Annotated[str, Form(max_length=100)] = "",
    viewer: Viewer = counsellor,
) -> Response:
    s = services_of(request)
    ticket = await _ticket(s, ticket_id)
    body = text.strip()
    if not body and canned_id.isascii() and canned_id.isdigit() and int(canned_id) <= MAX_ID:
        canned = await s.console.get_canned(int(canned_id))
        body = canned.text if canned else ""
    source = Source(WEB_CHAT_ID, web_message_id(nonce or new_token()))
    outcome = await s.handoff.reply(ticket.id, body, source, await acting(s, viewer.account))
    if isinstance(outcome, out.Delivered):
        relayed = outcome.relayed
        details = {"delivered": outcome.sent, "outcome": relayed.value, "chars": len(body)}
        await s.console.audit(viewer.account, "reply", f"ticket:{ticket.id}", details)
    return _back(ticket.id, notice_of(outcome))


@router.post("/tickets/{ticket_id}/claim")
async def claim(request: Request, ticket_id: int, viewer: Viewer = counsellor) -> Response:
    s = services_of(request)
    ticket = await _ticket(s, ticket_id)
    outcome = await s.handoff.claim(ticket.id, await acting(s, viewer.account))
    done = isinstance(outcome, out.Claimed)
    await s.console.audit(viewer.account, "claim", f"ticket:{ticket.id}", {"done": done})
    return _back(ticket.id, notice_of(outcome))


@router.post("/tickets/{ticket_id}/transfer")
async def transfer(
    request: Request,
    ticket_id: int,
    to: Annotated[str, Form(max_length=32)] = "",
    viewer: Viewer = counsellor,
) -> Response:
    s = services_of(request)
    ticket = await _ticket(s, ticket_id)
    target = int(to) if to.isascii() and to.isdigit() and int(to) <= MAX_ID else to or None
    outcome = await s.handoff.transfer(ticket.id, target, await acting(s, viewer.account))
    if isinstance(outcome, out.Transferred):
        moved = outcome.to.id if outcome.to is not None else None
        await s.console.audit(viewer.account, "transfer", f"ticket:{ticket.id}", {"to": moved})
    return _back(ticket.id, notice_of(outcome))


@router.post("/tickets/{ticket_id}/resolve")
async def resolve(request: Request, ticket_id: int, viewer: Viewer = counsellor) -> Response:
    s = services_of(request)
    ticket = await _ticket(s, ticket_id)
    outcome = await s.handoff.resolve(ticket.id, await acting(s, viewer.account))
    done = isinstance(outcome, out.Resolved)
    await s.console.audit(viewer.account, "resolve", f"ticket:{ticket.id}", {"done": done})
    return _back(ticket.id, notice_of(outcome))


@router.post("/tickets/{ticket_id}/draft")
async def send_draft(request: Request, ticket_id: int, viewer: Viewer = counsellor) -> Response:
    s = services_of(request)
    ticket = await _ticket(s, ticket_id)
    outcome = await s.handoff.send_draft(ticket.id, await acting(s, viewer.account))
    if isinstance(outcome, out.Delivered):
        relayed = outcome.relayed
        done = relayed not in (Relayed.ALREADY, Relayed.NOWHERE)
        details = {"done": done, "outcome": relayed.value}
        await s.console.audit(viewer.account, "send_draft", f"ticket:{ticket.id}", details)
    return _back(ticket.id, notice_of(outcome))


@router.post("/tickets/{ticket_id}/note")
async def note(
    request: Request,
    ticket_id: int,
    text: Annotated[str, Form(max_length=MAX_REPLY_CHARS)] = "",
    viewer: Viewer = counsellor,
) -> Response:
    s = services_of(request)
    ticket = await _ticket(s, ticket_id)
    outcome = await s.handoff.note(ticket.id, text, await acting(s, viewer.account))
    if isinstance(outcome, out.NoteSaved):
        await s.console.audit(viewer.account, "note", f"ticket:{ticket.id}")
    return _back(ticket.id, notice_of(outcome))


@router.post("/tickets/{ticket_id}/propose")
async def propose_curated(
    request: Request,
    ticket_id: int,
    question: Annotated[str, Form(max_length=2000)] = "",
    answer: Annotated[str, Form(max_length=MAX_REPLY_CHARS)] = "",
    doc_id: Annotated[str, Form(max_length=128)] = "",
    lang: Annotated[str, Form()] = "zh",
    viewer: Viewer = counsellor,
) -> Response:
    s = services_of(request)
    ticket = await _ticket(s, ticket_id)
    known = {d.meta.id for d in await s.run(s.kb.documents)}
    if not question.strip() or not answer.strip() or doc_id not in known:
        return _back(ticket.id, "web_curated_invalid")
    curated_id = await s.console.propose_curated(
        question,
        answer,
        lang,
        doc_id,
        ticket_id=ticket.id,
        proposed_by=viewer.account.id,
    )
    await s.console.audit(
        viewer.account, "curated_proposed", f"curated:{curated_id}", {"ticket": ticket.id}
    )
    return _back(ticket.id, "web_curated_proposed")


# -- canned replies ----------------------------------------------------------------------


@router.get("/canned")
async def canned_page(request: Request, viewer: Viewer = counsellor) -> Response:
    s = services_of(request)
    return render(request, "canned.html", canned=await s.console.canned())


@router.post("/canned")
async def canned_add(
    request: Request,
    title: Annotated[str, Form(max_length=200)] = "",
    text: Annotated[str, Form(max_length=MAX_REPLY_CHARS)] = "",
    lang: Annotated[str, Form()] = "zh",
    viewer: Viewer = counsellor,
) -> Response:
    s = services_of(request)
    if title.strip() and text.strip():
        canned_id = await s.console.add_canned(title, text, lang, viewer.account.id)
        await s.console.audit(viewer.account, "canned_added", f"canned:{canned_id}")
    return redirect("/canned")


@router.post("/canned/{canned_id}/delete")
async def canned_delete(request: Request, canned_id: int, viewer: Viewer = counsellor) -> Response:
    s = services_of(request)
    if await s.console.delete_canned(canned_id):
        await s.console.audit(viewer.account, "canned_deleted", f"canned:{canned_id}")
    return redirect("/canned")
