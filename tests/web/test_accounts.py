"""The admins' accounts page: create a console account, disable it (its sessions end and it
cannot log in), enable it again, set a new password; an admin cannot disable themselves, a
counsellor cannot reach the page; every change is in the audit log."""

from __future__ import annotations

from tests.web.conftest import PASSWORD, Console

NEW_PASSWORD = "a long enough new passphrase"


async def test_an_admin_creates_disables_enables_and_resets_an_account(console: Console) -> None:
    await console.as_user("admin")
    created = await console.form(
        "/admin/accounts",
        "/admin/accounts",
        username="Zhou",
        display_name="周老师",
        role="counsellor",
        password=PASSWORD,
        telegram_id="777",
    )
    assert created.headers["location"].endswith("msg=web_account_created")
    page = (await console.client.get(created.headers["location"])).text
    assert "账号已创建" in page and 'data-account="zhou"' in page and "周老师" in page

    again = await console.form(
        "/admin/accounts", "/admin/accounts", username="zhou", password=PASSWORD
    )
    assert again.headers["location"].endswith("msg=web_account_exists")
    weak = await console.form("/admin/accounts", "/admin/accounts", username="wu", password="short")
    assert weak.headers["location"].endswith("msg=web_account_weak_password")

    # the new counsellor logs in; disabled, the session ends and a new login is refused
    await console.as_user("admin")
    disabled = await console.form("/admin/accounts", "/admin/accounts/zhou/disable")
    assert disabled.headers["location"].endswith("msg=web_account_disabled_msg")
    console.client.cookies.clear()
    refused = await console.login("zhou", PASSWORD)
    assert refused.status_code != 303
    await console.as_user("admin")
    await console.form("/admin/accounts", "/admin/accounts/zhou/enable")
    reset = await console.form(
        "/admin/accounts", "/admin/accounts/zhou/password", password=NEW_PASSWORD
    )
    assert reset.headers["location"].endswith("msg=web_account_password_set")
    console.client.cookies.clear()
    assert (await console.login("zhou", PASSWORD)).status_code != 303
    assert (await console.login("zhou", NEW_PASSWORD)).status_code == 303

    await console.as_user("admin")
    myself = await console.form("/admin/accounts", "/admin/accounts/admin/disable")
    assert myself.headers["location"].endswith("msg=web_account_not_yourself")
    audit = [(e.action, e.target) for e in await console.services.console.audit_log()]
    for action in ("account_created", "account_disabled", "account_enabled", "password_changed"):
        assert (action, "account:zhou") in audit


async def test_a_counsellor_cannot_manage_accounts(console: Console) -> None:
    await console.as_user("chen")
    page = await console.client.get("/admin/accounts")
    assert page.status_code == 403
    queue = (await console.client.get("/queue")).text
    refused = await console.client.post(
        "/admin/accounts",
        data={
            "csrf_token": queue.split('name="csrf_token" value="')[1].split('"')[0],
            "username": "evil",
            "password": PASSWORD,
            "role": "admin",
        },
    )
    assert refused.status_code == 403
    assert await console.services.console.account_by_username("evil") is None
