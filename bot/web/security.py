"""Passwords (argon2id), session tokens, CSRF tokens and the login rate limit."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.storage.console_store import Account, ConsoleStore

MIN_PASSWORD_CHARS = 10

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the account does not exist, so that a login with an
    unknown name takes as long as one with a wrong password (no account enumeration by
    timing). Made on first use, not at import."""
    return _hasher.hash("not a password of anyone")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        matched = _hasher.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a session token (a stolen table is no login)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


class LoginLimiter:
    """At most ``attempts`` failed logins per account name and per client address in
    ``window``; kept in the database so that every console process sees them."""

    def __init__(self, console: ConsoleStore, attempts: int, window: dt.timedelta) -> None:
        self._console = console
        self._attempts = attempts
        self._window = window

    @staticmethod
    def keys(username: str, address: str) -> list[str]:
        return [f"user:{username.strip().lower()[:64]}", f"addr:{address}"]

    async def blocked(self, username: str, address: str) -> bool:
        since = self._console.now() - self._window
        return await self._console.login_failures(self.keys(username, address), since) >= (
            self._attempts
        )

    async def failed(self, username: str, address: str) -> None:
        await self._console.add_login_failure(self.keys(username, address))

    async def succeeded(self, account: Account) -> None:
        before = self._console.now() - self._window
        await self._console.clear_login_failures(self.keys(account.username, "")[0], before)
