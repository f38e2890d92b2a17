"""Accounts, login, sessions, logout, the login rate limit, the audit log, the language."""

from __future__ import annotations

from tests.web.conftest import ADMIN_PASSWORD, Console, csrf_of


async def test_login_sets_a_safe_session_cookie_and_logout_ends_the_session(
    console: Console,
) -> None:
    response = await console.login("chen")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "gg_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    queue = await console.client.get("/queue")
    assert queue.status_code == 200
    assert "陈老师" in queue.text

    token = console.client.cookies.get("gg_session")
    await console.logout()
    console.client.cookies.set("gg_session", token or "")  # the old cookie no longer works
    after = await console.client.get("/queue")
    assert after.status_code == 303 and after.headers["location"].startswith("/login")
    actions = [entry.action for entry in await console.services.console.audit_log()]
    assert actions[:2] == ["logout", "login"]


async def test_wrong_password_and_unknown_user_are_refused_alike(console: Console) -> None:
    wrong = await console.login("chen", "not the password at all")
    unknown = await console.login("nobody", "not the password at all")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "用户名或密码不正确" in response.text
    assert (await console.client.get("/queue")).status_code == 303
    failed = [e for e in await console.services.console.audit_log() if e.action == "login_failed"]
    assert len(failed) == 2


async def test_login_is_rate_limited_after_repeated_failures(console: Console) -> None:
    for _ in range(5):
        assert (await console.login("admin", "guessing wrong")).status_code == 401
    blocked = await console.login("admin", ADMIN_PASSWORD)  # even the right password now
    assert blocked.status_code == 429
    assert "登录失败次数过多" in blocked.text
    assert (await console.client.get("/admin/documents")).status_code == 303

    console.clock.advance(minutes=16)  # the window has passed
    assert (await console.login("admin", ADMIN_PASSWORD)).status_code == 303
    assert (await console.client.get("/admin/documents")).status_code == 200


async def test_login_form_needs_its_csrf_token(console: Console) -> None:
    response = await console.client.post(
        "/login", data={"username": "chen", "password": "correct horse battery"}
    )
    assert response.status_code == 403
    assert (await console.client.get("/queue")).status_code == 303


async def test_login_never_redirects_off_site(console: Console) -> None:
    page = await console.client.get("/login?next=//evil.example/x")
    response = await console.client.post(
        "/login",
        data={
            "username": "chen",
            "password": "correct horse battery",
            "csrf_token": csrf_of(page.text),
            "next": "//evil.example/x",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_ui_language_follows_the_browser_then_the_switch(console: Console) -> None:
    english = await console.client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Sign in to the console" in english.text
    chinese = await console.client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "登录工作台" in chinese.text
    preferred = await console.client.get(
        "/login", headers={"Accept-Language": "en;q=0.5,zh-TW;q=0.8"}
    )
    assert "登录工作台" in preferred.text

    await console.client.get("/lang/en?next=/login")
    switched = await console.client.get("/login", headers={"Accept-Language": "zh-CN"})
    assert "Sign in to the console" in switched.text
    await console.as_user("chen")  # a fresh browser: Chinese by default
    assert "等待老师的工单" in (await console.client.get("/queue")).text
    await console.client.get("/lang/en?next=/queue")
    queue = await console.client.get("/queue")
    assert "Tickets waiting for a counsellor" in queue.text
