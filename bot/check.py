"""``gradguide check``: is this deployment set up to work? One finding per thing checked,
each ✓, ! (works, but something is missing) or ✗ (will not work) with the fix for it.

The channel-free part lives here (settings, data directory, database, index, web console);
the Bot API part (token, counsellor group, rights, members, webhook) in
``bot.channels.telegram.check``. Nothing here creates a file or a directory: a check on a
fresh machine leaves it as it was.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url

from bot.datadir import DataDirProblem, check_data_dir
from bot.errors import GradGuideError
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.db import Database, head_revision


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    """Works, but something an operator should know or set."""
    ERROR = "error"
    """Will not work until fixed: ``gradguide check`` exits non-zero."""


@dataclass(frozen=True, slots=True)
class Finding:
    area: str
    status: Status
    what: str
    fix: str = ""


MARKS = {Status.OK: "[green]✓[/]", Status.WARN: "[yellow]![/]", Status.ERROR: "[red]✗[/]"}


def table(findings: list[Finding]) -> Table:
    out = Table(title="GradGuide set-up check")
    for column in ("", "area", "finding", "fix"):
        out.add_column(column)
    for f in findings:
        out.add_row(MARKS[f.status], f.area, escape(f.what), escape(f.fix))
    return out


def failed(findings: list[Finding]) -> bool:
    return any(f.status is Status.ERROR for f in findings)


def check_settings(settings: Settings) -> list[Finding]:
    found = [Finding("settings", Status.OK, "loaded (environment, prefix GRADGUIDE_)")]
    if not settings.counsellor_ids:
        found.append(
            Finding(
                "settings",
                Status.WARN,
                "no counsellor ids: nobody can claim a ticket in Telegram",
                "set GRADGUIDE_COUNSELLOR_IDS=id1,id2 (each person sends /ids to the bot)",
            )
        )
    if not settings.admin_ids:
        found.append(
            Finding(
                "settings",
                Status.WARN,
                "no admin ids: nobody can upload documents or see /stats in Telegram",
                "set GRADGUIDE_ADMIN_IDS=id1,id2 (each person sends /ids to the bot)",
            )
        )
    return found


def check_data_directory(settings: Settings) -> Finding:
    path = settings.data_dir.absolute()
    if not path.exists():
        return Finding(
            "data",
            Status.WARN,
            f"{path} does not exist yet",
            "the first `gradguide serve`, `chat` or `kb rebuild` creates it; set "
            "GRADGUIDE_DATA_DIR to keep it elsewhere",
        )
    checked = check_data_dir(path)
    if checked.problem is not DataDirProblem.NONE:
        return Finding("data", Status.ERROR, checked.message(Messages.load()), "")
    return Finding("data", Status.OK, f"{path} (writable)")


async def check_database(settings: Settings) -> Finding:
    url = settings.database_url_or_default
    parsed = make_url(url)
    sqlite_file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if sqlite_file and not Path(sqlite_file).exists():
        return Finding(
            "database",
            Status.WARN,
            f"{sqlite_file} is not created yet",
            "`gradguide serve` (or `gradguide web`) creates and migrates it",
        )
    try:
        db = Database(url)
    except GradGuideError as exc:
        return Finding("database", Status.ERROR, str(exc), "fix GRADGUIDE_DATABASE_URL")
    try:
        current = await db.revision()
    except GradGuideError as exc:
        return Finding(
            "database",
            Status.ERROR,
            str(exc),
            "start the database server, or fix GRADGUIDE_DATABASE_URL",
        )
    finally:
        await db.dispose()
    head = head_revision()
    if current == head:
        return Finding("database", Status.OK, f"{db.display_url}: migrations current ({head})")
    if current is None:
        return Finding(
            "database",
            Status.WARN,
            f"{db.display_url} is empty",
            "`gradguide serve` migrates it at start-up",
        )
    return Finding(
        "database",
        Status.WARN,
        f"{db.display_url} is at revision {current}, this GradGuide at {head}",
        "`gradguide serve` migrates it at start-up (back it up first)",
    )


def check_index(settings: Settings) -> Finding:
    if settings.chroma_url is None and not settings.chroma_path.is_dir():
        return Finding(
            "index",
            Status.WARN,
            f"not built yet ({settings.chroma_path})",
            "`gradguide kb rebuild` builds it now; `serve` and `chat` build it on first start",
        )
    try:
        stats = KnowledgeBase.open(settings).stats()
    except GradGuideError as exc:
        return Finding("index", Status.ERROR, str(exc), "check GRADGUIDE_CHROMA_URL")
    what = f"{stats.documents} documents, {stats.chunks} chunks, model {stats.embedding_model}"
    if stats.documents == 0:
        return Finding("index", Status.WARN, what, "`gradguide kb rebuild` builds it")
    return Finding("index", Status.OK, f"{what} ({stats.store})")


def check_console(settings: Settings) -> Finding:
    host = settings.web_host
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local and not settings.web_cookie_secure:
        return Finding(
            "console",
            Status.WARN,
            f"listens on {host} and sends the session cookie over plain HTTP",
            "serve it behind TLS and set GRADGUIDE_WEB_COOKIE_SECURE=true",
        )
    secure = "secure cookie" if settings.web_cookie_secure else "local only"
    return Finding("console", Status.OK, f"{host}:{settings.web_port} ({secure})")
