"""``gradguide users``: console accounts for counsellors and admins."""

from __future__ import annotations

import argparse
import getpass
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.errors import GradGuideError
from bot.handoff.models import CLI
from bot.settings import Settings


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser(
        "users", help="web console accounts (counsellors and admins)"
    ).add_subparsers(dest="users_command", required=True)
    add = users.add_parser("add", help="create an account (asks for the password)")
    add.add_argument("username")
    add.add_argument("--role", choices=["counsellor", "admin"], required=True)
    add.add_argument("--name", default=None, help="the name shown to colleagues")
    add.add_argument(
        "--telegram-id",
        type=int,
        default=None,
        help="the person's Telegram user id, if they also answer in the counsellor group",
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    passwd = users.add_parser("passwd", help="set a new password (ends the account's sessions)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    users.add_parser("list", help="list the accounts")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise GradGuideError("the passwords differ")
    return first


async def run(settings: Settings, args: argparse.Namespace, out: Console) -> int:
    from bot.storage.console_store import ConsoleStore
    from bot.storage.db import Database
    from bot.storage.store import Store
    from bot.web.security import MIN_PASSWORD_CHARS, hash_password

    db = Database.from_settings(settings)
    try:
        await db.migrate()
        console = ConsoleStore(Store(db))
        if args.users_command == "list":
            table = Table(title="Console accounts")
            for column in ("user", "name", "role", "telegram id", "last login"):
                table.add_column(column)
            for account in await console.accounts():
                last = account.last_login_at
                table.add_row(
                    escape(account.username),
                    escape(account.display_name),
                    account.role,
                    "" if account.telegram_id is None else str(account.telegram_id),
                    "" if last is None else last.strftime("%Y-%m-%d %H:%M"),
                )
            out.print(table)
            return 0
        password = _password(args.password_stdin)
        try:
            hashed = hash_password(password)
        except ValueError as exc:
            raise GradGuideError(
                f"{exc} (at least {MIN_PASSWORD_CHARS}; a passphrase is best)"
            ) from exc
        if args.users_command == "passwd":
            if not await console.set_password(args.username, hashed):
                raise GradGuideError(f"no account {args.username!r}")
            await console.audit(
                None,
                "password_changed",
                f"account:{args.username.strip().lower()}",
                actor=str(CLI),
            )
            out.print(f"password of {escape(args.username)} changed")
            return 0
        account = await console.add_account(
            args.username,
            args.name or args.username,
            args.role,
            hashed,
            telegram_id=args.telegram_id,
        )
        await console.audit(
            None,
            "account_created",
            f"account:{account.username}",
            {"role": account.role},
            actor=str(CLI),
        )
        out.print(f"{account.role} account {escape(account.username)} created")
        return 0
    finally:
        await db.dispose()
