"""The admins' pages: documents (list, upload with a chunk preview, replace, expire, remove),
hit testing, unanswered questions grouped by similarity, curated answers, analytics with
CSV export, and the audit log."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response
from numpy.typing import NDArray

from bot.agent.models import Conversation, Reply
from bot.errors import DocumentNotFoundError, GradGuideError, MetadataError
from bot.kb.chunking import chunk_sections
from bot.kb.ingest import IngestReport
from bot.kb.loaders import SUPPORTED_SUFFIXES, load_file
from bot.kb.models import ID_PATTERN, Chunk, Lang, ParsedDocument
from bot.kb.regions import NATIONAL, region_name
from bot.kb.retriever import Hit
from bot.kb.service import Conflict, OverrideOutcome, OverrideStatus
from bot.kb.upload import META_FIELDS
from bot.privacy import redact
from bot.storage.store import UnansweredQuestion
from bot.web import charts
from bot.web.app import Viewer, WebServices, admin, lang_of, redirect, render, services_of
from bot.web.counsellor import actor_names
from bot.web.labels import Labels
from bot.web.security import new_token
from bot.web.staging import NameCheck, Staging, file_name

logger = logging.getLogger(__name__)


@asynccontextmanager
async def _sweep_at_start_up(app: FastAPI) -> AsyncIterator[None]:
    """Uploads abandoned before the console (re)started are removed (``bot.web.staging``)."""
    services: WebServices = app.state.services
    _staging(services).sweep()
    yield


router = APIRouter(prefix="/admin", lifespan=_sweep_at_start_up)


def _staging(s: WebServices) -> Staging:
    return Staging(s.settings.data_dir / "uploads" / "web-staging")


def _uploads(s: WebServices) -> Path:
    """Where committed console uploads are kept: one folder per upload, by document id."""
    return s.settings.data_dir / "uploads" / "web"


# -- documents ---------------------------------------------------------------------------


@router.get("/documents")
async def documents(request: Request, viewer: Viewer = admin) -> Response:
    s = services_of(request)
    docs = await s.run(s.kb.documents)
    overrides = await s.run(s.kb.all_overrides)
    lang = lang_of(request)
    query = request.query_params.get("q", "").strip()[:100]
    validity = request.query_params.get("validity", "")
    doc_lang = request.query_params.get("lang", "")
    rows = sorted(
        (
            (d, v)
            for d, v in ((d, s.kb.validity(d).value) for d in docs)
            if (not query or query.lower() in f"{d.meta.id} {d.meta.title}".lower())
            and (not validity or v == validity)
            and (not doc_lang or d.meta.lang == doc_lang)
        ),
        key=lambda row: (row[1] == "active", row[0].meta.id),
    )
    regions = {d.meta.id: _region_label(d.meta.region, lang, s) for d in docs}
    notes = {  # an admin's changes, kept until undone: "Set by an admin: Expires 2026-11-25"
        doc_id: s.messages.get(
            "web_override_note",
            lang,
            fields="; ".join(
                f"{s.messages.get('web_meta_' + name, lang)} {value}"
                for name, value in sorted(changes.items())
            ),
        )
        for doc_id, changes in overrides.items()
    }
    return render(
        request,
        "documents.html",
        rows=rows,
        total=len(docs),
        regions=regions,
        query=query,
        validity_filter=validity,
        doc_lang=doc_lang,
        new_doc=request.query_params.get("doc", ""),
        override_notes=notes,
        flash=request.query_params.get("msg"),
    )


def _region_label(code: str, lang: Lang, s: WebServices) -> str:
    """全国 / National, or the division's name in the page's language (not the raw code)."""
    if code == NATIONAL:
        return s.messages.get("web_region_national", lang)
    return region_name(code, lang)


@router.get("/documents/upload")
async def upload_form(request: Request, viewer: Viewer = admin) -> Response:
    params = request.query_params
    meta = {name: params.get(name, "") for name in META_FIELDS}
    replace = params.get("replace", "")
    s = services_of(request)
    _staging(s).sweep()
    if replace:
        try:
            doc = await s.run(s.kb.document, replace)
        except DocumentNotFoundError as exc:
            raise HTTPException(404) from exc
        meta.update(_meta_form(doc.meta.model_dump(mode="json")))
    return render(
        request,
        "upload.html",
        meta=meta,
        replace=replace,
        body=params.get("body", ""),
        error=None,
        token="",
        file_name="",
    )


def _meta_form(values: dict[str, Any]) -> dict[str, str]:
    form: dict[str, str] = {}
    for name in META_FIELDS:
        value = values.get(name)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        form[name] = "" if value is None else str(value)
    return form


@dataclass(frozen=True)
class Preview:
    document: ParsedDocument
    chunks: list[Chunk]


def _preview(s: WebServices, path: Path, overrides: dict[str, str]) -> Preview:
    """Parse and chunk the file exactly as ingestion would, without writing the index."""
    max_bytes = int(s.settings.max_file_mb * 1_048_576)
    inflated = int(s.settings.max_inflated_mb * 1_048_576)
    document = load_file(path, overrides, max_bytes=max_bytes, max_inflated_bytes=inflated)
    chunks = chunk_sections(
        document.sections, s.settings.chunk_max_chars, s.settings.chunk_overlap_chars
    )
    return Preview(document, chunks)


async def _form_overrides(request: Request) -> dict[str, str]:
    form = await request.form()
    overrides: dict[str, str] = {}
    for name in META_FIELDS:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            overrides[name] = value.strip()[:2000]
    return overrides


def _bad_ids(overrides: dict[str, str], replace: str) -> bool:
    """An id (or the document to replace) that is not an id: it would name no document and
    must never become part of a path."""
    return any(v and not ID_PATTERN.match(v) for v in (overrides.get("id", ""), replace))


@router.post("/documents/preview")
async def upload_preview(
    request: Request,
    file: Annotated[UploadFile | None, File()] = None,
    text: Annotated[str, Form(max_length=2_000_000)] = "",
    token: Annotated[str, Form()] = "",
    replace: Annotated[str, Form(max_length=200)] = "",
    viewer: Viewer = admin,
) -> Response:
    """Step 1: keep the upload in a staging folder and show its metadata and chunks."""
    s = services_of(request)
    staging = _staging(s)
    overrides = await _form_overrides(request)
    if _bad_ids(overrides, replace):
        return _upload_error(request, overrides, "", token, "", "web_upload_bad_id", status=400)
    if replace:
        overrides["id"] = replace
    if token:
        found = staging.folder(token)
        if found is None:
            return redirect("/admin/documents/upload")
        folder = found
    else:
        staging.sweep()
        if file is not None and file.filename:
            name = file_name(file.filename)
            if name.check is not NameCheck.OK:
                key = "web_upload_bad_name"
                return _upload_error(request, overrides, replace, "", "", key, status=400)
            token = new_token()
            folder = staging.create(token)
            limit = int(s.settings.max_file_mb * 1_048_576) + 1
            data = await file.read(limit + 1)
            (folder / name.name).write_bytes(data[: limit + 1])
        elif text.strip():
            token = new_token()
            folder = staging.create(token)
            (folder / "document.md").write_text(text, encoding="utf-8")
        else:
            return _upload_error(request, overrides, replace, "", "", "web_upload_nothing")
    if replace:
        staging.note_replace(folder, replace)
    path = staging.staged(folder)
    if path is None:
        staging.discard(folder)
        return redirect("/admin/documents/upload")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        staging.discard(folder)
        return _upload_error(request, overrides, replace, "", "", "web_upload_unsupported")
    try:
        preview = await s.run(_preview, s, path, overrides)
    except MetadataError as exc:  # kept: the admin fills in what is missing, all at once
        shown = {**exc.derived, **{k: v for k, v in overrides.items() if v}}
        bad = [name for name in (f.split(".")[0] for f in exc.fields) if name in META_FIELDS]
        return _upload_error(request, shown, replace, token, path.name, "web_upload_meta", bad=bad)
    except GradGuideError as exc:  # the file itself cannot be read: nothing is kept
        staging.discard(folder)
        reason = getattr(exc, "reason", str(exc))
        return _upload_error(request, overrides, replace, "", "", None, reason)
    except BaseException:
        staging.discard(folder)
        raise
    doc_id = preview.document.meta.id
    conflict = await s.run(s.kb.conflict, doc_id, path)
    return _preview_page(request, token, path, preview, replace, staging.replaces(folder), conflict)


def _preview_page(
    request: Request,
    token: str,
    path: Path,
    preview: Preview,
    replace: str,
    noted: str | None,
    conflict: Conflict | None,
    status: int = 200,
) -> Response:
    """The chunks and metadata; a document with the same id is named, with where it came
    from, and is replaced only if the admin came from its Replace button or ticks the box."""
    meta = preview.document.meta
    asked = conflict is not None and noted == meta.id
    return render(
        request,
        "preview.html",
        status,
        token=token,
        file_name=path.name,
        meta=meta,
        form=_meta_form(meta.model_dump(mode="json")),
        chunks=preview.chunks,
        replaces=asked,
        conflict=None if asked else conflict,
        replace=replace,
    )


def _upload_error(
    request: Request,
    overrides: dict[str, str],
    replace: str,
    token: str,
    file_name: str,
    key: str | None,
    reason: str | None = None,
    *,
    status: int = 422,
    bad: list[str] | None = None,
) -> Response:
    return render(
        request,
        "upload.html",
        status,
        meta=_meta_form(dict(overrides)),
        bad_fields=bad or [],
        replace=replace,
        body="",
        error=reason,
        error_key=key,
        error_message="web_upload_unreadable",
        token=token,
        file_name=file_name,
    )


@router.post("/documents/commit")
async def upload_commit(
    request: Request,
    token: Annotated[str, Form()] = "",
    replace: Annotated[str, Form(max_length=200)] = "",
    viewer: Viewer = admin,
) -> Response:
    """Step 2: move the staged file to a folder of its own under the data dir and ingest it.
    A document with the same id is replaced only when the admin asked for it (the Replace
    button, or the box ticked on the preview); otherwise the preview is shown again (409)
    naming that document and its file."""
    s = services_of(request)
    staging = _staging(s)
    folder = staging.folder(token)
    if folder is None:
        return redirect("/admin/documents?msg=web_upload_expired")
    overrides = await _form_overrides(request)
    if _bad_ids(overrides, replace):
        return _upload_error(request, overrides, "", token, "", "web_upload_bad_id", status=400)
    staged = staging.staged(folder)
    if staged is None:
        return redirect("/admin/documents?msg=web_upload_expired")
    try:
        preview = await s.run(_preview, s, staged, overrides)
    except GradGuideError as exc:
        reason = getattr(exc, "reason", str(exc))
        return _upload_error(request, overrides, "", token, staged.name, None, reason)
    doc_id = preview.document.meta.id
    noted = staging.replaces(folder)
    conflict = await s.run(s.kb.conflict, doc_id, staged)
    asked = doc_id in (replace, noted)
    if conflict is not None and not asked:
        page = _preview_page(request, token, staged, preview, noted or "", noted, conflict, 409)
        return page
    final = _uploads(s) / doc_id / new_token()[:16]
    final.mkdir(parents=True, exist_ok=True)
    target = final / staged.name
    shutil.move(str(staged), target)
    report: IngestReport = await s.run(s.kb.ingest, [target], overrides, replace=asked)
    outcome = report.outcomes[0] if report.outcomes else None
    failed = outcome is None or outcome.status == "failed"
    if failed:  # back where it was: the admin may correct it and try again
        shutil.move(str(target), staged)
        shutil.rmtree(final, ignore_errors=True)
    else:
        staging.discard(folder)
        if conflict is not None:
            _drop_replaced_upload(s, Path(conflict.source))
    await s.console.audit(
        viewer.account,
        "document_uploaded",
        f"doc:{outcome.doc_id if outcome else doc_id}",
        {
            "status": outcome.status if outcome else "failed",
            "file": target.name,
            "replaced": conflict.source if conflict is not None and not failed else None,
        },
    )
    if outcome is None or failed:
        error = outcome.error if outcome else "?"
        if outcome is not None and outcome.conflict is not None:  # another process, meanwhile
            c = outcome.conflict
            error = s.messages.get(
                "web_upload_id_taken",
                lang_of(request),
                doc_id=c.doc_id,
                title=c.title,
                source=c.source,
            )
        return render(
            request,
            "upload.html",
            422,
            meta=_meta_form(dict(overrides)),
            replace="",
            body="",
            error=error,
            error_key=None,
            error_message="web_upload_failed",
            token=token,
            file_name=staged.name,
        )
    done = quote(outcome.doc_id or "")
    return redirect(f"/admin/documents?msg=web_upload_{outcome.status}&doc={done}#doc-{done}")


def _drop_replaced_upload(s: WebServices, source: Path) -> None:
    """A console upload that another file replaced is no document's source any more: its
    folder goes (files from anywhere else are never touched)."""
    uploads = _uploads(s).resolve()
    folder = source.parent.resolve()
    if folder.is_relative_to(uploads) and folder != uploads and folder.parent != uploads:
        shutil.rmtree(folder, ignore_errors=True)


async def _change_overrides(
    request: Request,
    doc_id: str,
    viewer: Viewer,
    change: Callable[[str], OverrideOutcome],
    event: str,
    messages: tuple[str, str],
) -> Response:
    """Apply an admin's change to a document (``change``: a ``KnowledgeBase`` call), audit
    it as ``event`` and go back to the list with ``messages`` (done, failed)."""
    s = services_of(request)
    outcome = await s.run(change, doc_id)
    if outcome.status is OverrideStatus.NOT_FOUND:
        raise HTTPException(404)
    ok = outcome.status in (OverrideStatus.APPLIED, OverrideStatus.UNCHANGED)
    await s.console.audit(
        viewer.account,
        event,
        f"doc:{doc_id}",
        {"ok": ok, "outcome": outcome.status.value, "reason": outcome.reason},
    )
    if outcome.status is OverrideStatus.NO_SOURCE:
        return redirect("/admin/documents?msg=web_expire_no_source")
    return redirect(f"/admin/documents?msg={messages[0] if ok else messages[1]}")


@router.post("/documents/{doc_id}/expire")
async def expire(request: Request, doc_id: str, viewer: Viewer = admin) -> Response:
    """Expire from yesterday. The expiry is kept with the knowledge base and applied on every
    (re)index (a ``kb rebuild``, a new upload of the document) until it is undone."""
    kb = services_of(request).kb
    return await _change_overrides(
        request, doc_id, viewer, kb.expire, "document_expired", ("web_expired", "web_expire_failed")
    )


@router.post("/documents/{doc_id}/overrides/clear")
async def clear_overrides(request: Request, doc_id: str, viewer: Viewer = admin) -> Response:
    """Undo an admin's changes (an expiry): the document's own metadata holds again."""
    kb = services_of(request).kb
    return await _change_overrides(
        request,
        doc_id,
        viewer,
        kb.clear_overrides,
        "document_overrides_cleared",
        ("web_overrides_cleared", "web_overrides_failed"),
    )


@router.post("/documents/{doc_id}/remove")
async def remove(request: Request, doc_id: str, viewer: Viewer = admin) -> Response:
    s = services_of(request)
    try:
        await s.run(s.kb.remove, doc_id)
    except DocumentNotFoundError as exc:
        raise HTTPException(404) from exc
    await s.console.audit(viewer.account, "document_removed", f"doc:{doc_id}")
    return redirect("/admin/documents?msg=web_removed")


@router.get("/documents/{doc_id}")
async def document_page(request: Request, doc_id: str, viewer: Viewer = admin) -> Response:
    s = services_of(request)
    try:
        doc = await s.run(s.kb.document, doc_id)
        chunks = await s.run(s.kb.chunks_of, doc_id)
    except DocumentNotFoundError as exc:
        raise HTTPException(404) from exc
    return render(
        request, "document.html", doc=doc, validity=s.kb.validity(doc).value, chunks=chunks
    )


# -- hit testing -------------------------------------------------------------------------


def _hit_test(
    s: WebServices, question: str, lang: str | None, region: str | None, mode: str
) -> tuple[list[Hit], Reply]:
    hits = s.kb.search(question, k=10, lang=lang, region=region, mode=mode)
    conversation = Conversation(lang="en" if lang == "en" else "zh" if lang else None)
    conversation.region = region
    return hits, s.agent.reply(conversation, question)


@router.get("/hits")
async def hit_testing(request: Request, viewer: Viewer = admin) -> Response:
    s = services_of(request)
    params = request.query_params
    question = params.get("q", "").strip()[:1000]
    lang = params.get("lang") if params.get("lang") in ("zh", "en") else None
    region = params.get("region", "").strip() or None
    mode = params.get("mode") if params.get("mode") in ("hybrid", "dense", "lexical") else "hybrid"
    hits: list[Hit] = []
    reply: Reply | None = None
    if question:
        hits, reply = await s.run(_hit_test, s, question, lang, region, mode or "hybrid")
        await s.console.audit(
            viewer.account,
            "hit_test",
            None,
            {"query": redact(question)[:300], "lang": lang, "region": region, "mode": mode},
        )
    return render(
        request,
        "hits.html",
        question=question,
        q_lang=lang or "",
        region=region or "",
        mode=mode,
        hits=hits,
        reply=reply,
    )


# -- unanswered questions ----------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    questions: list[UnansweredQuestion]
    crisis: bool = False
    """One of its questions reads as a crisis: never offered as the start of a document."""

    @property
    def lead(self) -> UnansweredQuestion:
        return self.questions[0]


def group_questions(
    s: WebServices, rows: list[UnansweredQuestion], threshold: float
) -> list[Group]:
    """Greedy grouping by cosine similarity of the embeddings: each question joins the first
    group whose first question is at least ``threshold`` similar; biggest groups first."""
    if not rows:
        return []
    vectors, crisis = _screened(s, [r.question for r in rows])
    leads: list[int] = []
    members: list[list[int]] = []
    for i in range(len(rows)):
        for g, lead in enumerate(leads):
            if float(vectors[i] @ vectors[lead]) >= threshold:
                members[g].append(i)
                break
        else:
            leads.append(i)
            members.append([i])
    groups = [
        Group([rows[i] for i in group], crisis=any(crisis[i] for i in group)) for group in members
    ]
    return sorted(groups, key=lambda group: -len(group.questions))


def _screened(s: WebServices, questions: list[str]) -> tuple[NDArray[np.float32], list[bool]]:
    """Each question's embedding and whether it is a crisis, computed once per question
    text and kept (``WebServices.screened``): the page lists hundreds of questions and is
    loaded again and again."""
    cache = s.screened
    missing = list(dict.fromkeys(q for q in questions if q not in cache))
    if missing:
        if len(cache) + len(missing) > SCREENED_KEPT:
            cache.clear()
        blank = Conversation(id="console")
        vectors = np.asarray(s.kb.embedder.embed_documents(missing), dtype=np.float32)
        for question, vector in zip(missing, vectors, strict=True):
            cache[question] = (vector, s.agent.screen(blank, question) is not None)
    found = [cache.get(q) for q in questions]
    if any(f is None for f in found):  # cleared by another request meanwhile: once more
        return _screened(s, questions)
    return np.stack([f[0] for f in found if f]), [f[1] for f in found if f]


SCREENED_KEPT = 5_000


WEAK_MARGIN = 0.1
"""An answer given with a confidence less than this above the answer threshold is listed as
one that needs a better answer (below the threshold the bot said it was not sure)."""


@router.get("/unanswered")
async def unanswered(request: Request, viewer: Viewer = admin) -> Response:
    s = services_of(request)
    days = _days(request, 30)
    since = s.store.now() - dt.timedelta(days=days)
    rows = await s.store.list_unanswered(since, 500)
    weak_below = s.settings.answer_threshold + WEAK_MARGIN
    rows += await s.console.weak_answers(since, weak_below, 500)
    rows.sort(key=lambda row: row.created_at, reverse=True)
    groups = await s.run(group_questions, s, rows, s.settings.unanswered_group_similarity)
    return render(request, "unanswered.html", groups=groups, days=days)


# -- analytics ---------------------------------------------------------------------------


def _days(request: Request, default: int) -> int:
    try:
        return max(1, min(365, int(request.query_params.get("days", default))))
    except ValueError:
        return default


async def _analytics(request: Request) -> Any:
    s = services_of(request)
    days = _days(request, 14)
    now = s.store.now()
    return await s.console.analytics(now - dt.timedelta(days=days), now, s.settings.timezone)


@router.get("/analytics")
async def analytics(request: Request, viewer: Viewer = admin) -> Response:
    s = services_of(request)
    data = await _analytics(request)
    lang = lang_of(request)

    def t(key: str, **values: Any) -> str:
        return s.messages.get(key, lang, **values)

    words = Labels(t, s.message_keys)

    labels = [d.day.strftime("%m-%d") for d in data.days]
    per_day = charts.bars(
        labels,
        [(t("web_an_questions"), [d.questions for d in data.days])],
        t("web_an_questions_per_day"),
    )
    outcome = charts.bars(
        labels,
        [
            (t("web_an_answered"), [d.answered for d in data.days]),
            (t("web_an_handed_off"), [d.handed_off for d in data.days]),
        ],
        t("web_an_answered_vs_handed_off"),
    )
    ratings = charts.hbars(
        [(f"{'★' * n}", float(count)) for n, count in sorted(data.ratings.items(), reverse=True)],
        t("web_an_ratings"),
    )
    topics = charts.hbars(
        [(words.value("web_intent_", k), float(v)) for k, v in data.topics], t("web_an_topics")
    )
    langs = charts.hbars(
        [(words.lang(k), float(v)) for k, v in data.by_lang.items()], t("web_an_by_lang")
    )
    return render(
        request,
        "analytics.html",
        data=data,
        days=_days(request, 14),
        per_day=per_day,
        outcome=outcome,
        ratings=ratings,
        topics=topics,
        langs=langs,
    )


@router.get("/analytics.csv")
async def analytics_csv(request: Request, viewer: Viewer = admin) -> Response:
    data = await _analytics(request)
    await services_of(request).console.audit(
        viewer.account, "analytics_exported", None, {"days": _days(request, 14)}
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "questions", "answered", "handed_off"])
    for day in data.days:
        writer.writerow([day.day.isoformat(), day.questions, day.answered, day.handed_off])
    writer.writerow([])
    writer.writerow(["metric", "value"])
    for n, count in sorted(data.ratings.items()):
        writer.writerow([f"rating_{n}", count])
    writer.writerow(["thumbs_up", data.thumbs_up])
    writer.writerow(["thumbs_down", data.thumbs_down])
    median = data.median_first_response_s
    writer.writerow(["median_first_response_s", "" if median is None else round(median, 1)])
    for topic, count in data.topics:
        writer.writerow([f"topic_{topic}", count])
    for lang, count in data.by_lang.items():
        writer.writerow([f"lang_{lang}", count])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="gradguide-analytics.csv"'},
    )


# -- audit log ---------------------------------------------------------------------------


@router.get("/audit")
async def audit(request: Request, viewer: Viewer = admin) -> Response:
    s = services_of(request)
    return render(
        request,
        "audit.html",
        entries=await s.console.audit_log(300),
        actor_names=await actor_names(s, lang_of(request)),
    )
