"""Login, logout, the language switch and the home page."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from bot.web.app import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Viewer,
    counsellor,
    redirect,
    render,
    services_of,
)
from bot.web.security import new_token, same, token_hash, verify_password

logger = logging.getLogger(__name__)

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no //host, no scheme): no open redirect after login."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _login_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    response = render(
        request,
        "login.html",
        status,
        login_csrf=token,
        error=error,
        next=_safe_next(request.query_params.get("next")),
    )
    settings = services_of(request).settings
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings.web_cookie_secure,
        max_age=3600,
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=512)] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    s = services_of(request)
    if not same(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE)):
        return render(request, "error.html", 403, message_key="web_csrf_failed")
    address = _client(request)
    if await s.limiter.blocked(username, address):
        await s.console.audit(None, "login_rate_limited", username[:64], actor="anonymous")
        logger.warning("console login rate-limited for %s", address)
        return _login_page(request, 429, "web_login_rate_limited")
    account = await s.console.account_by_username(username) if username else None
    valid = verify_password(account.password_hash if account else None, password)
    if account is None or not valid or not account.active:
        await s.limiter.failed(username, address)
        await s.console.audit(account, "login_failed", username[:64], actor="anonymous")
        return _login_page(request, 401, "web_login_failed")
    await s.limiter.succeeded(account)
    token = new_token()
    lifetime = dt.timedelta(hours=s.settings.web_session_hours)
    await s.console.add_session(token_hash(token), account.id, new_token(), lifetime)
    await s.console.mark_login(account.id)
    await s.console.audit(account, "login")
    response = redirect(_safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=s.settings.web_cookie_secure,
        max_age=int(lifetime.total_seconds()),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, viewer: Viewer = counsellor) -> Response:
    s = services_of(request)
    await s.console.end_session(viewer.session.token_hash)
    await s.console.audit(viewer.account, "logout")
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/lang/{code}")
async def switch_language(request: Request, code: str) -> Response:
    """A preference only (no state on the server), so a plain link."""
    response = redirect(_safe_next(request.query_params.get("next")))
    if code in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, code, samesite="lax", max_age=365 * 86400)
    return response


@router.get("/")
async def home(request: Request, viewer: Viewer = counsellor) -> Response:
    return redirect("/queue")
