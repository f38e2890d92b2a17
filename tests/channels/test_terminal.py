"""The terminal is a real channel: ``gradguide chat`` opens real tickets on the shared
database, a counsellor's reply from another process appears in the running chat, and the
graduate rates the resolved ticket there."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.channels.terminal.front import plain
from bot.handoff import outcomes as out
from bot.handoff.models import Source
from bot.prompts import Messages
from bot.root import handoff_service
from bot.settings import Settings
from bot.storage import Database, Store
from bot.storage.console_store import ConsoleStore
from tests.conftest import DocWriter, run_gradguide


class Terminal:
    """A running ``gradguide chat``: type lines, wait for what it prints."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen = ""

    async def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line + "\n").encode())
        await self.process.stdin.drain()

    async def until(self, text: str, timeout: float = 60) -> str:
        """Everything printed so far, once ``text`` is in it."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while text not in self.seen:
                chunk = await self.process.stdout.read(4096)
                assert chunk, f"chat ended before printing {text!r}:\n{self.seen}"
                self.seen += chunk.decode(errors="replace")
        return self.seen


@asynccontextmanager
async def terminal(settings: Settings) -> AsyncIterator[Terminal]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "chat",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            "GRADGUIDE_DATA_DIR": str(settings.data_dir),
            "GRADGUIDE_KNOWLEDGE_DIR": str(settings.knowledge_dir),
            "GRADGUIDE_EMBEDDING": "hash",
            "PATH": "/usr/bin:/bin",
            "COLUMNS": "200",
        },
    )
    try:
        yield Terminal(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_handoff_from_the_terminal_is_answered_from_the_console_and_rated_there(
    settings: Settings, write_doc: DocWriter
) -> None:
    write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n", title="试用期规定")
    messages = Messages.load()
    said = lambda key, **params: plain(messages.get(key, "zh", **params))  # noqa: E731
    async with terminal(settings) as chat:
        await chat.type("/human")
        await chat.until(said("tg_handoff_queued", position=1), timeout=240)

        # the ticket is a real one: in the shared database and in `gradguide handoffs list`
        database = Database(settings.database_url_or_default)
        store = Store(database)
        (ticket,) = await store.list_tickets(["queued"])
        graduate = await store.get_user(ticket.user_id)
        assert graduate is not None and graduate.telegram_id is None
        listed = await asyncio.to_thread(
            run_gradguide, settings, "handoffs", "list", env={"COLUMNS": "200"}
        )
        assert listed.returncode == 0, listed.stderr
        assert any(
            line.split("│")[1].strip() == str(ticket.id)
            for line in listed.stdout.splitlines()
            if "│" in line
        )

        # a counsellor answers from another process (the console's composition)
        service = handoff_service(settings, store, messages)
        try:
            account = await ConsoleStore(store).add_account("wang", "王老师", "counsellor", "x")
            wang = await service.directory.account(account)
            sent = await service.reply(ticket.id, "你好，我是王老师，请讲。", Source(-1, 1), wang)
            assert isinstance(sent, out.Delivered) and sent.sent
            await chat.until("你好，我是王老师，请讲。")
            assert said("tg_counsellor_joined") in chat.seen  # the reply claimed it

            # while the ticket is open, what the graduate types is for the counsellor
            await chat.type("公司试用期不给交社保怎么办？")
            await chat.until(said("chat_sent_to_counsellor"))
            turns = await store.recent_turns(ticket.conversation_id, 20)
            assert [t.text for t in turns if t.role == "graduate"][
                -1
            ] == "公司试用期不给交社保怎么办？"

            assert isinstance(await service.resolve(ticket.id, wang), out.Resolved)
            await chat.until(said("chat_rate_prompt"))
            assert said("tg_resolved") in chat.seen
            await chat.type("5")
            await chat.until(said("tg_rate_thanks"))
            rated = await store.get_ticket(ticket.id)
            assert rated is not None and rated.status == "resolved" and rated.rating == 5

            # the bot answers again
            await chat.type("试用期最长多久？")
            await chat.until("六个月")
        finally:
            await service.close()
            await database.dispose()
        await chat.type("/quit")
        assert await asyncio.wait_for(chat.process.wait(), 30) == 0
        assert chat.process.stderr is not None
        assert b"Traceback" not in await chat.process.stderr.read()


async def test_leaving_the_terminal_cancels_a_ticket_nobody_could_answer_there(
    settings: Settings, write_doc: DocWriter
) -> None:
    """The next `gradguide chat` is a new graduate, so a reply after quitting would never be
    shown: the ticket is cancelled — unless contact details were left for a call back."""
    write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n", title="试用期规定")
    messages = Messages.load()
    said = lambda key, **params: plain(messages.get(key, "zh", **params))  # noqa: E731
    for contact in ("", "13800138000"):
        async with terminal(settings) as chat:
            await chat.type("我想找老师")
            await chat.type("/human")
            await chat.until(said("tg_handoff_queued", position=1), timeout=240)
            if contact:
                await chat.type(f"/contact {contact}")
                await chat.until(said("tg_contact_saved"))
            await chat.type("/quit")
            left = "chat_left_with_contact" if contact else "chat_left_cancelled"
            await chat.until(said(left))
            assert await chat.process.wait() == 0
    database = Database(settings.database_url_or_default)
    try:
        store = Store(database)
        first, second = sorted(await store.list_tickets(), key=lambda t: t.id)
        assert first.status == "cancelled"
        assert second.status == "queued" and second.contact == "13800138000"
        assert [e.actor for e in await store.events(first.id) if e.kind == "cancelled"] == [
            "graduate"
        ]
    finally:
        await database.dispose()
