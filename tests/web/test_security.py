"""Every route checks the session and the role; every form its CSRF token; everything a
graduate wrote is escaped on every page."""

from __future__ import annotations

import re

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import Mount

from bot.storage.models import TicketRow
from bot.web import app as web_app
from tests.web.conftest import Console, csrf_of

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/lang/{code}")}
"""The only routes without a session check (besides the static files)."""
PUBLIC_MOUNTS = {"/static"}
SAMPLE = {
    "ticket_id": "1",
    "canned_id": "1",
    "doc_id": "probation-zh",
    "curated_id": "1",
    "attachment_id": "1",
    "username": "chen",
}


def _guard(dependant: Dependant) -> str | None:
    """'admin' or 'counsellor': which of the app's guards the route depends on."""
    calls = {dependency.call for dependency in dependant.dependencies}
    if web_app.admin.dependency in calls:
        return "admin"
    if web_app.counsellor.dependency in calls:
        return "counsellor"
    return None


def served_routes(console: Console) -> list[RouteContext]:
    """Every route the running app serves, included routers flattened (with their prefix
    and their own dependencies)."""
    return list(iter_route_contexts(console.app.routes))


def guarded_routes(console: Console) -> list[tuple[str, str, str | None]]:
    """(method, route path, guard) for every route of the running app except the public
    ones: a route added later is checked without editing this file. A route of another
    kind, or a path parameter without a sample value, fails here (extend SAMPLE)."""
    found = []
    for context in served_routes(console):
        route = context.original_route
        if isinstance(route, Mount) and context.path in PUBLIC_MOUNTS:
            continue
        assert isinstance(route, APIRoute), f"unexpected route {route!r}: check its security"
        assert context.path is not None and context.methods, route
        for method in sorted(context.methods):
            if (method, context.path) in PUBLIC:
                continue
            found.append((method, context.path, _guard(context.dependant)))
    return found


def routes(console: Console) -> list[tuple[str, str]]:
    """(method, concrete path) for every guarded route of the app, path parameters filled."""
    found = []
    for method, path, _ in guarded_routes(console):
        names = re.findall(r"{(\w+)}", path)
        missing = [name for name in names if name not in SAMPLE]
        assert not missing, f"{path}: add a sample value for {missing} to SAMPLE"
        found.append((method, re.sub(r"{(\w+)}", lambda m: SAMPLE[m.group(1)], path)))
    return found


def test_every_route_but_the_public_ones_has_a_guard(console: Console) -> None:
    listed = guarded_routes(console)
    unguarded = [(m, p) for m, p, guard in listed if guard is None]
    assert unguarded == [], f"routes without guard('counsellor') or guard('admin'): {unguarded}"
    for method, path, guard in listed:  # everything under /admin needs an admin
        if path.startswith("/admin"):
            assert guard == "admin", (method, path)
    served = {(m, c.path) for c in served_routes(console) for m in c.methods or ()}
    assert served >= PUBLIC, "an allow-listed public route is gone: update PUBLIC"


async def test_the_route_list_covers_the_console(console: Console) -> None:
    paths = {path for _, path in routes(console)}
    assert {"/queue", "/tickets/1", "/tickets/1/reply", "/admin/documents"} <= paths
    assert len(paths) > 25
    await console.as_user("admin")
    for method, path in routes(console):  # every listed route is really served by the app
        if method == "GET":
            response = await console.client.get(path)
            assert response.status_code in (200, 303, 404), path


async def test_every_route_refuses_an_anonymous_visitor(console: Console) -> None:
    ticket = await console.graduate_ticket()
    for method, path in routes(console):
        response = await console.client.request(method, path, data={"text": "hi"})
        if method == "GET":
            assert response.status_code == 303, (method, path)
            assert response.headers["location"].startswith("/login"), (method, path)
        else:
            assert response.status_code == 401, (method, path)
        background = await console.client.request(method, path, headers={"HX-Request": "true"})
        assert background.status_code == 401, (method, path)
    fresh = await console.store.get_ticket(ticket.id)
    assert fresh is not None and fresh.status == "queued" and not console.tg.messages_to(1001)


async def test_a_counsellor_is_forbidden_every_admin_route(console: Console) -> None:
    await console.as_user("chen")
    csrf = csrf_of((await console.client.get("/queue")).text)
    admin_paths = {(m, p) for m, p, guard in guarded_routes(console) if guard == "admin"}
    admin_routes = [
        (m, re.sub(r"{(\w+)}", lambda g: SAMPLE[g.group(1)], p)) for m, p in sorted(admin_paths)
    ]
    assert len(admin_routes) >= 14
    for method, path in admin_routes:
        response = await console.client.request(
            method, path, data={"csrf_token": csrf} if method == "POST" else None
        )
        assert response.status_code == 403, (method, path)
        assert "你没有权限访问这个页面" in response.text
    docs = {d.meta.id for d in console.services.kb.documents()}
    assert {"probation-zh", "hukou-en"} <= docs  # nothing was removed or expired


async def test_every_form_needs_the_sessions_csrf_token(console: Console) -> None:
    ticket = await console.graduate_ticket()
    await console.as_user("admin")
    posts = [p for m, p in routes(console) if m == "POST"]
    for path in posts:
        missing = await console.client.post(path, data={"text": "hello", "to": "queue"})
        assert missing.status_code == 403, path
        assert "表单已过期或来源不明" in missing.text
        forged = await console.client.post(path, data={"csrf_token": "forged", "text": "hi"})
        assert forged.status_code == 403, path
    # nothing happened: the ticket is untouched, nothing reached the graduate, still logged in
    fresh = await console.store.get_ticket(ticket.id)
    assert fresh is not None and fresh.status == "queued"
    assert console.tg.messages_to(1001) == []
    assert (await console.client.get("/admin/documents")).status_code == 200
    refused = [e for e in await console.services.console.audit_log() if e.action == "csrf_refused"]
    assert len(refused) >= len(posts)


async def test_a_token_from_another_session_is_refused(console: Console) -> None:
    ticket = await console.graduate_ticket()
    await console.as_user("li")
    li_token = csrf_of((await console.client.get("/queue")).text)
    await console.as_user("chen")
    response = await console.client.post(
        f"/tickets/{ticket.id}/resolve", data={"csrf_token": li_token}
    )
    assert response.status_code == 403
    fresh = await console.store.get_ticket(ticket.id)
    assert fresh is not None and fresh.is_open


EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_html_from_a_graduate_is_escaped_on_every_page(console: Console) -> None:
    ticket = await console.graduate_ticket(f"我的问题 {EVIL}", name=f"Bob{EVIL}", draft=EVIL)
    await console.store.add_unanswered(None, f"没人回答 {EVIL}", "zh", 0.1, "low_confidence")
    await console.services.console.propose_curated(
        f"问题 {EVIL}", f"答案 {EVIL}", "zh", "probation-zh", ticket_id=ticket.id, proposed_by=None
    )
    async with console.store.transaction() as session:
        row = await session.get(TicketRow, ticket.id)
        assert row is not None
        row.citations = [
            {"doc_id": "probation-zh", "title": EVIL, "heading": EVIL, "excerpt": EVIL}
        ]
    await console.as_user("admin")
    await console.form(f"/tickets/{ticket.id}", f"/tickets/{ticket.id}/note", text=EVIL)
    await console.form("/canned", "/canned", title=EVIL, text=EVIL, lang="zh")
    pages = [
        "/queue",
        "/queue/rows",
        f"/tickets/{ticket.id}",
        "/canned",
        "/admin/unanswered",
        "/admin/curated",
        "/admin/hits?q=" + EVIL,
    ]
    for page in pages:
        response = await console.client.get(page)
        assert response.status_code == 200, page
        assert "<script>alert" not in response.text, page
        assert "<img src=x" not in response.text, page
        assert "&lt;script&gt;" in response.text or "&lt;img" in response.text, page
    csp = (await console.client.get("/queue")).headers["content-security-policy"]
    assert "script-src 'self'" in csp
