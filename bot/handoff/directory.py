"""Who the counsellors are, whichever front end they work in.

A counsellor is a Telegram id listed in ``GRADGUIDE_COUNSELLOR_IDS`` (named as the users
table knows them) or an active console account (named by its display name; its id on
tickets is its Telegram id when it has one, else minus the account id). 0 is the command
line. Transfers accept exactly these, from every front end.
"""

from __future__ import annotations

from bot.handoff.models import CLI_COUNSELLOR, Actor, Counsellor
from bot.kb.models import Lang
from bot.settings import Settings
from bot.storage.console_store import ConsoleStore
from bot.storage.store import Store, User


class Directory:
    def __init__(self, settings: Settings, store: Store, console: ConsoleStore) -> None:
        self.settings = settings
        self.store = store
        self.console = console

    async def everyone(self, *, inactive: bool = False) -> dict[int, Counsellor]:
        """The counsellors a ticket may be handed to, by their id on tickets (``inactive``:
        also deactivated console accounts, to name who held a closed ticket)."""
        found: dict[int, Counsellor] = {}
        for telegram_id in self.settings.counsellor_ids:
            user = await self.store.get_user(telegram_id=telegram_id)
            name = (user.display_name if user else None) or str(telegram_id)
            found[telegram_id] = Counsellor(telegram_id, name, Actor.counsellor(telegram_id))
        for account in await self.console.accounts():
            if account.active or inactive:
                cid = account.counsellor_id
                found[cid] = Counsellor(cid, account.display_name, Actor.web(account.username))
        return found

    async def find(self, target: str | int) -> Counsellor | None:
        """The counsellor ``target`` names (an id on tickets; ``@123`` as typed in
        Telegram is read as 123); None for anyone else, the command line included."""
        if isinstance(target, str):
            text = target.strip().lstrip("@")
            if not text.lstrip("-").isdigit() or len(text) > 20:
                return None
            target = int(text)
        return (await self.everyone()).get(target)

    async def name(self, counsellor_id: int | None) -> str:
        """How colleagues know a ticket's holder: a counsellor's name, "CLI", else the id."""
        if counsellor_id is None:
            return "?"
        if counsellor_id == CLI_COUNSELLOR.id:
            return CLI_COUNSELLOR.name
        known = (await self.everyone()).get(counsellor_id)
        if known is not None:
            return known.name
        user = await self.store.get_user(telegram_id=counsellor_id) if counsellor_id > 0 else None
        return (user.display_name if user else None) or str(counsellor_id)


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
