"""``gradguide chat``: a graduate in the terminal, on the same database and handoff service
as Telegram and the console.

Each run is one graduate (a user without a Telegram chat). The bot answers until the
graduate asks for a person (``/human``), is in crisis, or the agent hands off: then a real
ticket opens — in ``gradguide handoffs list`` and the console's queue — and what the
graduate types goes to the ticket's transcript. Whatever a counsellor sends from the console,
``gradguide handoffs reply`` or the ticket's Telegram topic reaches this terminal through the
outbox (``bot.channels.terminal.front``), which a background task reads every half second.
When the ticket is resolved the graduate rates it here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape

from bot.agent.agent import Agent
from bot.agent.models import Conversation, Intent, Reply
from bot.channels.terminal.front import key_prefix, plain
from bot.channels.terminal.render import print_reply
from bot.handoff import outcomes as out
from bot.handoff.service import HandoffService
from bot.kb.models import Lang, detect_lang
from bot.kb.regions import REGIONS, normalise_region
from bot.prompts import Messages
from bot.storage.store import Store

POLL_S = 0.5
GRADUATE_NAME = "终端同学"
"""How a terminal graduate appears to counsellors."""


async def stdin_lines(interactive: bool) -> AsyncIterator[str]:
    """Lines typed (or piped) in, read off the event loop so replies print meanwhile."""
    while True:
        try:
            line = await asyncio.to_thread(input, "> " if interactive else "")
        except EOFError:
            return
        yield line


@dataclass
class TerminalChat:
    store: Store
    agent: Agent
    handoff: HandoffService
    messages: Messages
    out: Console
    answer: Callable[[Conversation, str], Reply] | None = None
    """How the agent is asked (default: ``agent.reply``)."""
    conversation: Conversation = field(default_factory=lambda: Conversation(id="terminal"))
    user_id: int = 0
    conversation_id: int = 0
    rating_for: int | None = None
    """A resolved ticket whose 1–5 rating the next line may give."""
    last_lang: Lang = "zh"
    """The language the graduate last wrote in (bare commands and numbers are answered in
    it)."""

    def say(self, key: str, lang: Lang, **params: object) -> None:
        self.out.print(escape(plain(self.messages.get(key, lang, **params))))

    async def run(self, lines: AsyncIterator[str]) -> int:
        user = await self.store.create_user(GRADUATE_NAME)
        self.user_id = user.id
        self.conversation_id = (await self.store.load_conversation(user.id)).id
        self.conversation.id = f"terminal-{user.id}"
        self.out.print(
            self.messages.get("welcome", "zh") + "\n" + self.messages.get("welcome", "en") + "\n"
        )
        watcher = asyncio.create_task(self._watch())
        try:
            async for raw in lines:
                line = raw.strip()
                if line and not await self.handle(line):
                    break
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self.deliver()  # what arrived meanwhile
            await self.leave()
        return 0

    async def leave(self) -> None:
        """The session ends for good (the next ``gradguide chat`` is a new graduate), so an
        open ticket could never show its reply: it is cancelled (the counsellors hear the
        graduate left), unless they left contact details to be called back on."""
        conversation = await self.store.load_conversation(self.user_id)
        ticket = await self.store.open_ticket_for(conversation.id)
        if ticket is None:
            return
        lang: Lang = self.conversation.lang or self.last_lang
        if ticket.contact:
            self.say("chat_left_with_contact", lang)
            return
        await self.handoff.cancel(self.user_id)
        self.say("chat_left_cancelled", lang)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            await self.deliver()

    async def deliver(self) -> int:
        """Print what the handoff service queued for this graduate; how many."""
        items = await self.store.terminal_messages(key_prefix(self.user_id))
        for item in items:
            self.out.print(f"[cyan]{escape(str(item.payload.get('text', '')))}[/]")
            rate = item.payload.get("rate")
            if isinstance(rate, int):
                self.rating_for = rate
            await self.store.mark_sent(item.id)
        return len(items)

    async def handle(self, line: str) -> bool:
        """One line; False to stop."""
        command, _, argument = line.partition(" ")
        conversation = self.conversation
        text = argument if command.startswith("/") else line
        if any(ch.isalpha() for ch in text):
            self.last_lang = detect_lang(text)
        lang: Lang = conversation.lang or self.last_lang
        if command in ("/quit", "/exit", "/q"):
            return False
        if self.rating_for is not None and line in ("1", "2", "3", "4", "5"):
            rated = await self.handoff.rate(self.user_id, self.rating_for, int(line))
            self.rating_for = None
            if isinstance(rated, out.Rated):
                self.say("tg_rate_thanks", lang)
                return True
        if command.startswith("/") and self._local(command, argument, lang):
            return True
        if command == "/cancel":
            cancelled = isinstance(await self.handoff.cancel(self.user_id), out.Cancelled)
            self.say("tg_cancel_done" if cancelled else "tg_cancel_nothing", lang)
            return True
        if command == "/contact":
            saved = await self.handoff.leave_contact(self.user_id, argument)
            self.say(out.contact_reply(saved), lang)
            return True
        owner = (await self.store.load_conversation(self.user_id)).owner
        if owner != "bot":  # a counsellor has the conversation: the line is for them
            await self.store.add_turn(self.conversation_id, "graduate", line, lang=lang)
            self.say("chat_sent_to_counsellor", lang)
            return True
        if command.startswith("/") and command != "/human":
            self.out.print(escape(self.messages.get("unknown_command", lang, command=command)))
            self.out.print(self.messages.get("chat_commands", lang))
            return True
        await self._ask(line, lang)
        return True

    def _local(self, command: str, argument: str, lang: Lang) -> bool:
        """The terminal's own settings commands; True when ``command`` was one."""
        conversation = self.conversation
        if command == "/reset":
            conversation.reset()
            self.out.print(self.messages.get("reset_done", lang))
        elif command == "/help":
            self.out.print(
                self.messages.get("help", lang) + "\n" + self.messages.get("chat_commands", lang)
            )
        elif command == "/lang":
            choice = argument.strip().lower()
            if choice in ("zh", "en"):
                conversation.lang = "zh" if choice == "zh" else "en"
                self.out.print(self.messages.get("lang_set", conversation.lang))
            else:
                current = conversation.lang or "auto"
                self.out.print(self.messages.get("lang_usage", lang, current=current))
        elif command == "/region":
            code = normalise_region(argument) if argument.strip() else ""
            if code in REGIONS.values():
                conversation.region = code
                self.out.print(self.messages.get("region_set", lang, region=argument.strip()))
            else:
                self.out.print(self.messages.get("region_unknown", lang, region=argument.strip()))
        else:
            return False
        return True

    async def _ask(self, line: str, lang: Lang) -> None:
        answer = self.answer or self.agent.reply
        conversation = self.conversation
        chosen = conversation.lang
        if line.startswith("/"):  # a bare command: answered in the graduate's language
            conversation.lang = chosen or lang
        try:
            reply = await asyncio.to_thread(answer, conversation, line)
        finally:
            conversation.lang = chosen
        store = self.store
        await store.add_turn(self.conversation_id, "graduate", line, lang=reply.lang)
        await store.add_turn(
            self.conversation_id,
            "bot",
            reply.text,
            lang=reply.lang,
            intent=reply.intent.value,
            handoff=reply.handoff,
        )
        print_reply(reply, self.out)
        if reply.handoff:
            opened = await self.handoff.open(self.user_id, self.conversation_id, reply)
            if reply.intent is Intent.CRISIS:
                self.say("tg_handoff_crisis_queued", reply.lang)
            elif opened.position:
                key = "tg_handoff_queued" if opened.created else "tg_handoff_already"
                self.say(key, reply.lang, position=opened.position)
        self.out.print()
