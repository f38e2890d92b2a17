"""Who the counsellors are, whichever front end they work in.

A counsellor is one row of ``counsellors`` (``Store.counsellor``): a Telegram id listed in
``GRADGUIDE_COUNSELLOR_IDS``, an active console account, or both when the account carries
that Telegram id (one person, one id on tickets). ``gradguide handoffs`` at the server's
terminal is the single 'cli' row. Transfers accept exactly these, from every front end.

Names: a console account's display name; else the name Telegram gave (kept in ``users``);
else the Telegram id.
"""

from __future__ import annotations

from bot.handoff.models import CLI, Actor, Counsellor
from bot.kb.models import Lang
from bot.settings import Settings
from bot.storage.console_store import Account, ConsoleStore
from bot.storage.store import CounsellorRecord, Store, User

CLI_NAME = "CLI"


class Directory:
    def __init__(self, settings: Settings, store: Store, console: ConsoleStore) -> None:
        self.settings = settings
        self.store = store
        self.console = console

    async def telegram(self, telegram_id: int, name: str | None = None) -> Counsellor:
        """The counsellor writing from this Telegram account (the caller has checked the id
        is listed). ``name`` (Telegram's first name) is kept so colleagues see it, e.g. in
        "already claimed by"; a console account carrying this id gives its own name."""
        user = await self.store.get_or_create_user(telegram_id, name)
        if user.role != "counsellor":
            await self.store.set_role(user.id, "counsellor")
        account = next(
            (a for a in await self.console.accounts() if a.active and a.telegram_id == telegram_id),
            None,
        )
        row = await self.store.counsellor(
            telegram_id=telegram_id, account_id=account.id if account else None
        )
        shown = account.display_name if account else name or user.display_name
        return Counsellor(
            row.id, shown or str(telegram_id), Actor.counsellor(telegram_id), telegram_id
        )

    async def account(self, account: Account) -> Counsellor:
        """The console account as the counsellor acting on a ticket."""
        row = await self.store.counsellor(account_id=account.id, telegram_id=account.telegram_id)
        return Counsellor(
            row.id, account.display_name, Actor.web(account.username), row.telegram_id
        )

    async def cli(self) -> Counsellor:
        """Someone at the server's terminal (``gradguide handoffs``)."""
        row = await self.store.cli_counsellor()
        return Counsellor(row.id, CLI_NAME, CLI)

    async def everyone(self, *, inactive: bool = False) -> dict[int, Counsellor]:
        """The counsellors a ticket may be handed to, by their id on tickets (``inactive``:
        also deactivated accounts, ids no longer listed and the command line, to name who
        held a closed ticket)."""
        accounts = await self.console.accounts()
        rows = await self.store.counsellors()
        by_account = {r.account_id: r for r in rows if r.account_id is not None}
        by_telegram = {r.telegram_id: r for r in rows if r.telegram_id is not None}
        found: dict[int, Counsellor] = {}
        for account in accounts:
            if not (account.active or inactive):
                continue
            row = by_account.get(account.id)
            if row is None or (row.telegram_id is None and account.telegram_id is not None):
                row = await self.store.counsellor(
                    account_id=account.id, telegram_id=account.telegram_id
                )
            found[row.id] = Counsellor(
                row.id, account.display_name, Actor.web(account.username), row.telegram_id
            )
        carried = {a.telegram_id for a in accounts if a.active and a.telegram_id is not None}
        for telegram_id in self.settings.counsellor_ids:
            if telegram_id in carried:  # the account's row above is this person
                continue
            row = by_telegram.get(telegram_id) or await self.store.counsellor(
                telegram_id=telegram_id
            )
            if row.id not in found:
                found[row.id] = await self._telegram_person(row, telegram_id)
        if inactive:
            names = {a.id: a for a in accounts}
            for row in rows:
                if row.id not in found:
                    found[row.id] = await self._former(row, names)
        return found

    async def _telegram_person(self, row: CounsellorRecord, telegram_id: int) -> Counsellor:
        user = await self.store.get_user(telegram_id=telegram_id)
        name = (user.display_name if user else None) or str(telegram_id)
        return Counsellor(row.id, name, Actor.counsellor(telegram_id), telegram_id)

    async def _former(self, row: CounsellorRecord, accounts: dict[int, Account]) -> Counsellor:
        """A row nobody may hand a ticket to now: the command line, or someone who left."""
        if row.kind == "cli":
            return Counsellor(row.id, CLI_NAME, CLI)
        account = accounts.get(row.account_id) if row.account_id is not None else None
        if account is not None:
            return Counsellor(row.id, account.display_name, Actor.web(account.username))
        if row.telegram_id is not None:
            return await self._telegram_person(row, row.telegram_id)
        return Counsellor(row.id, f"#{row.id}", Actor("counsellor", f"#{row.id}"))

    async def find(self, target: str | int) -> Counsellor | None:
        """The counsellor ``target`` names: their id on tickets (a number, as the console
        sends it); typed in Telegram, a Telegram id (``@123`` is read as 123) or a console
        user name. None for anyone else, the command line included."""
        everyone = await self.everyone()
        if isinstance(target, int):
            return everyone.get(target)
        text = target.strip().lstrip("@")
        if text.isdigit() and len(text) <= 20:
            number = int(text)
            by_telegram = [c for c in everyone.values() if c.telegram_id == number]
            return by_telegram[0] if by_telegram else everyone.get(number)
        return next(
            (
                c
                for c in everyone.values()
                if c.actor.kind == "web" and c.actor.identity == text.lower()
            ),
            None,
        )

    async def name(self, counsellor_id: int | None) -> str:
        """How colleagues know a ticket's holder: a counsellor's name, "CLI", else "#id"."""
        if counsellor_id is None:
            return "?"
        known = (await self.everyone(inactive=True)).get(counsellor_id)
        return known.name if known is not None else f"#{counsellor_id}"


def lang_of(user: User | None, fallback: Lang = "zh") -> Lang:
    if user is not None and user.lang in ("zh", "en"):
        return "zh" if user.lang == "zh" else "en"
    return fallback


async def graduate_lang(store: Store, user: User | None) -> Lang:
    """The graduate's chosen language; else the language they last wrote in; else zh."""
    if user is None or user.lang in ("zh", "en"):
        return lang_of(user)
    conversation = await store.load_conversation(user.id)
    for turn in reversed(await store.recent_turns(conversation.id, 20)):
        if turn.role == "graduate" and turn.lang in ("zh", "en"):
            return "en" if turn.lang == "en" else "zh"
    return "zh"
