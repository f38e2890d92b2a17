"""The console's curated answers page (admins): a counsellor's proposed reply is completed as
an answer card (``bot.agent.curated``) and approved, or rejected; an approved one can be
withdrawn. Every approval or withdrawal reloads the agent's cards at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bot.agent.curated import CardForm, Problem, build_card, impersonal
from bot.kb.cards import CuratedCard
from bot.kb.models import Lang
from bot.storage.console_store import CuratedAnswer
from bot.web.app import Viewer, admin, lang_of, redirect, render, services_of

router = APIRouter(prefix="/admin/curated")

CARD_LANGS: tuple[Lang, ...] = ("zh", "en")


def _card_values(c: CuratedAnswer, suggested: str) -> dict[str, str]:
    """The form's starting values: the approved card when there is one (editing), else the
    proposal in its language (the other language for the admin to write)."""
    if c.card:
        card = json.loads(c.card)
        values = {"doc_id": card["evidence"][0]["doc"], "quote": card["evidence"][0]["quote"]}
        for lang in CARD_LANGS:
            values[f"question_{lang}"] = card["question"][lang]
            values[f"answer_{lang}"] = card["answer"][lang]
            values[f"variants_{lang}"] = "\n".join(card.get("variants", {}).get(lang, []))
        return values
    return {
        f"question_{c.lang}": c.question,
        f"answer_{c.lang}": suggested,
        "doc_id": c.doc_id or "",
    }


async def _curated_page(
    request: Request,
    errors: dict[int, list[str]] | None = None,
    submitted: dict[int, dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    s = services_of(request)
    docs = sorted(await s.run(s.kb.documents), key=lambda d: d.meta.id)
    approved = await s.console.curated("approved")
    # to approve: the proposals, and answers approved before answers became cards
    pending = await s.console.curated("proposed") + [c for c in approved if not c.card]
    staff = [a.display_name for a in await s.console.accounts()]
    values: dict[int, dict[str, str]] = {}
    for c in pending:  # what would be served to everyone: no greeting, names or numbers
        names = list(staff)
        ticket = await s.store.get_ticket(c.ticket_id) if c.ticket_id else None
        user = await s.store.get_user(ticket.user_id) if ticket else None
        if user is not None and user.display_name:
            names += [user.display_name, user.display_name[:1] + "同学"]
        values[c.id] = _card_values(c, impersonal(c.answer, names))
    cards = [(c, json.loads(c.card)) for c in approved if c.card]
    values.update(submitted or {})
    return render(
        request,
        "curated.html",
        status_code=status_code,
        pending=pending,
        cards=cards,
        values=values,
        errors=errors or {},
        langs=CARD_LANGS,
        docs=[(d.meta.id, d.meta.title) for d in docs],
        titles={d.meta.id: d.meta.title for d in docs},
        flash=request.query_params.get("msg"),
    )


@router.get("")
async def curated(request: Request, viewer: Viewer = admin) -> Response:
    return await _curated_page(request)


def _problem_text(problem: Problem, t: Callable[..., str]) -> str:
    kind, detail = problem
    if kind == "missing":
        field, _, lang = detail.partition(".")
        name = t(f"web_curated_{field}") if field in ("question", "answer", "quote") else ""
        name = name or t("web_curated_document")
        return t("web_curated_problem_missing", field=f"{name} ({lang})" if lang else name)
    return t(f"web_curated_problem_{kind}", detail=detail)


@router.post("/{curated_id}/approve")
async def curated_approve(request: Request, curated_id: int, viewer: Viewer = admin) -> Response:
    """Approve a proposal as an answer card: every problem with the form is shown at once,
    with what the admin typed kept."""
    s = services_of(request)
    form = await request.form()
    submitted = {
        key: str(form.get(key, ""))[:8000]
        for key in (
            *(f"{f}_{lang}" for f in ("question", "answer", "variants") for lang in CARD_LANGS),
            "doc_id",
            "quote",
        )
    }
    proposal = await s.console.get_curated(curated_id)
    if proposal is None or proposal.status == "rejected":
        return redirect("/admin/curated?msg=web_not_found")
    doc_id = submitted["doc_id"].strip()
    chunks = {doc_id: [c.text for c in await s.run(s.kb.retriever.doc_chunks, doc_id)]}
    built = build_card(
        curated_id,
        CardForm(
            question={lang: submitted[f"question_{lang}"] for lang in CARD_LANGS},
            answer={lang: submitted[f"answer_{lang}"] for lang in CARD_LANGS},
            variants={lang: submitted[f"variants_{lang}"].splitlines() for lang in CARD_LANGS},
            doc_id=doc_id,
            quote=submitted["quote"],
        ),
        {d: texts for d, texts in chunks.items() if texts},
    )
    if not isinstance(built, CuratedCard):
        lang = lang_of(request)

        def t(key: str, **values: Any) -> str:
            return s.messages.get(key, lang, **values)

        problems = [_problem_text(p, t) for p in built]
        return await _curated_page(
            request, {curated_id: problems}, {curated_id: submitted}, status_code=422
        )
    done = await s.console.decide_curated(
        curated_id,
        "approved",
        viewer.account.id,
        question=built.question.get(proposal.lang),
        doc_id=doc_id,
        answer=built.answer.get(proposal.lang),
        card=built.model_dump_json(),
    )
    if done:
        await s.reload_curated()
        await s.console.audit(viewer.account, "curated_approved", f"curated:{curated_id}")
    return redirect("/admin/curated?msg=" + ("web_curated_approved" if done else "web_not_found"))


@router.post("/{curated_id}/reject")
async def curated_reject(request: Request, curated_id: int, viewer: Viewer = admin) -> Response:
    s = services_of(request)
    done = await s.console.decide_curated(curated_id, "rejected", viewer.account.id)
    if done:
        await s.reload_curated()
        await s.console.audit(viewer.account, "curated_rejected", f"curated:{curated_id}")
    return redirect("/admin/curated?msg=" + ("web_curated_rejected" if done else "web_not_found"))
