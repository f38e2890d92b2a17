"""The admins' accounts page: create console accounts, disable and enable them, and set a new
password (what ``gradguide users`` does on the command line). Every change is audited; an admin
cannot disable their own account (the console would lock its last admin out)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from bot.errors import StorageError
from bot.web.app import Viewer, admin, redirect, render, services_of
from bot.web.security import MIN_PASSWORD_CHARS, hash_password

router = APIRouter(prefix="/admin/accounts")

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
"""2–32 lowercase letters, digits, '.', '_' or '-' (what a person types at the login)."""


@router.get("")
async def accounts(request: Request, viewer: Viewer = admin) -> Response:
    s = services_of(request)
    return render(
        request,
        "accounts.html",
        accounts=await s.console.accounts(),
        min_password=MIN_PASSWORD_CHARS,
        flash=request.query_params.get("msg"),
    )


@router.post("")
async def create(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    display_name: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=16)] = "counsellor",
    password: Annotated[str, Form(max_length=200)] = "",
    telegram_id: Annotated[str, Form(max_length=20)] = "",
    viewer: Viewer = admin,
) -> Response:
    s = services_of(request)
    name = username.strip().lower()
    if not USERNAME.match(name) or role not in ("counsellor", "admin"):
        return redirect("/admin/accounts?msg=web_account_invalid")
    if telegram_id.strip() and not telegram_id.strip().isdigit():
        return redirect("/admin/accounts?msg=web_account_invalid")
    try:
        hashed = hash_password(password)
    except ValueError:
        return redirect("/admin/accounts?msg=web_account_weak_password")
    try:
        account = await s.console.add_account(
            name,
            display_name.strip() or name,
            "admin" if role == "admin" else "counsellor",
            hashed,
            telegram_id=int(telegram_id) if telegram_id.strip() else None,
        )
    except StorageError:
        return redirect("/admin/accounts?msg=web_account_exists")
    await s.console.audit(
        viewer.account, "account_created", f"account:{account.username}", {"role": account.role}
    )
    return redirect("/admin/accounts?msg=web_account_created")


@router.post("/{username}/disable")
async def disable(request: Request, username: str, viewer: Viewer = admin) -> Response:
    if username.strip().lower() == viewer.account.username:
        return redirect("/admin/accounts?msg=web_account_not_yourself")
    return await _set_active(request, username, False, viewer)


@router.post("/{username}/enable")
async def enable(request: Request, username: str, viewer: Viewer = admin) -> Response:
    return await _set_active(request, username, True, viewer)


async def _set_active(request: Request, username: str, active: bool, viewer: Viewer) -> Response:
    s = services_of(request)
    if not await s.console.set_active(username, active):
        return redirect("/admin/accounts?msg=web_account_unknown")
    action = "account_enabled" if active else "account_disabled"
    await s.console.audit(viewer.account, action, f"account:{username.strip().lower()}")
    told = "web_account_enabled" if active else "web_account_disabled_msg"
    return redirect(f"/admin/accounts?msg={told}")


@router.post("/{username}/password")
async def reset_password(
    request: Request,
    username: str,
    password: Annotated[str, Form(max_length=200)] = "",
    viewer: Viewer = admin,
) -> Response:
    s = services_of(request)
    try:
        hashed = hash_password(password)
    except ValueError:
        return redirect("/admin/accounts?msg=web_account_weak_password")
    if not await s.console.set_password(username, hashed):
        return redirect("/admin/accounts?msg=web_account_unknown")
    await s.console.audit(viewer.account, "password_changed", f"account:{username.lower()}")
    return redirect("/admin/accounts?msg=web_account_password_set")
