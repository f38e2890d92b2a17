"""`gradguide users add` makes an account that can log in; `gradguide web` serves the console."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import httpx
import pytest

from bot.settings import Settings
from bot.storage.console_store import AuditEntry, ConsoleStore
from bot.storage.db import Database
from bot.storage.store import Store
from tests.conftest import run_cli, run_gradguide
from tests.web.conftest import csrf_of, gradguide_web


def test_users_add_creates_a_login_and_refuses_weak_or_duplicate(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GRADGUIDE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough passphrase\n"))
    code, out, _ = run_cli(
        capsys, "users", "add", "Wang", "--role", "admin", "--name", "王老师", "--password-stdin"
    )
    assert code == 0 and "admin account wang created" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO("another long passphrase\n"))
    code, _, err = run_cli(
        capsys, "users", "add", "wang", "--role", "counsellor", "--password-stdin"
    )
    assert code == 2 and "already exists" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    code, _, err = run_cli(
        capsys, "users", "add", "zhao", "--role", "counsellor", "--password-stdin"
    )
    assert code == 2 and "at least 10" in err
    code, out, _ = run_cli(capsys, "users", "list")
    assert code == 0 and "王老师" in out and "zhao" not in out
    monkeypatch.setattr(sys, "stdin", io.StringIO("a brand new passphrase\n"))
    code, out, _ = run_cli(capsys, "users", "passwd", "Wang", "--password-stdin")
    assert code == 0 and "password of Wang changed" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO("a brand new passphrase\n"))
    code, _, err = run_cli(capsys, "users", "passwd", "nobody", "--password-stdin")
    assert code == 2 and "no account" in err
    entries = asyncio.run(_audit_log(Settings()))
    assert [(e.actor, e.action, e.target) for e in reversed(entries)] == [
        ("cli", "account_created", "account:wang"),
        ("cli", "password_changed", "account:wang"),
    ]  # the refused ones changed nothing and are not logged as changes


def test_users_commands_print_no_migration_log_lines(settings: Settings) -> None:
    """The first command on a new database migrates it: Alembic's INFO line for every
    migration step is noise to an operator (its warnings and errors still show)."""
    result = run_gradguide(settings, "users", "list", env={"GRADGUIDE_LOG_LEVEL": "INFO"})
    assert result.returncode == 0, result.stderr
    assert "Console accounts" in result.stdout
    assert "alembic" not in result.stderr and "Running upgrade" not in result.stderr


async def _audit_log(settings: Settings) -> list[AuditEntry]:
    database = Database.from_settings(settings)
    try:
        return await ConsoleStore(Store(database)).audit_log()
    finally:
        await database.dispose()


def test_gradguide_web_serves_the_console(tmp_path: Path) -> None:
    with (
        gradguide_web(tmp_path, "chen", "counsellor", "correct horse battery") as (url, _),
        httpx.Client(base_url=url, trust_env=False) as client,
    ):
        page = client.get("/login")
        login = client.post(
            "/login",
            data={
                "username": "chen",
                "password": "correct horse battery",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert login.status_code == 303
        queue = client.get("/queue")
        assert queue.status_code == 200 and "等待老师的工单" in queue.text
