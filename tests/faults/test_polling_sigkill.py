"""Issue 14, item 2: ``gradguide serve`` in long polling (the default mode) killed with
SIGKILL while something was in flight, then started again (``make faults``).

In long polling python-telegram-bot confirms the updates it fetched at once (its next
``getUpdates``): Telegram never delivers them again. So whatever the killed process had
decided must already be in the database — an answer waiting out a 429, a graduate's message
being copied into the ticket's topic, a counsellor's reply on its way to the graduate — and
an update it had not finished must be taken up again by the next process. Each test asserts
what the graduate or the counsellors see in Telegram (the fake Bot API): the message arrives,
exactly once; and that no update is left 'processing'.

One real ``gradguide serve`` process at a time (tests/cluster.py ``PollingBot``), on SQLite
and on PostgreSQL (the server at 127.0.0.1:5432), embedded Chroma, a 3 s chat lease (how
long a dead process holds what it was doing).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.storage.store import Ticket
from tests.cluster import FORUM, PollingBot
from tests.fakes.telegram_server import FakeTelegram, FakeUser, SentRecord
from tests.faults.conftest import Records, counsellor, eventually, graduate
from tests.faults.test_faults import QUESTIONS, chat_of, containing, shown, topic_of
from tests.storage.conftest import (  # noqa: F401  (fixtures shared with the storage tests)
    postgres_admin_url,
    postgres_env,
    postgres_url,
)

SETTINGS = {
    "chat_lease_s": "3",
    "rate_limit_per_minute": "0",
    "typing_after_s": "0",  # the typing indicator first, before the agent (test_d)
}
LONG_429_S = 60
"""A 429's retry_after: the killed process would still be waiting."""


@pytest.fixture(autouse=True)
def healthy() -> None:
    """These tests run their own bot process (long polling), not the webhook cluster."""


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir with the bundled knowledge base ingested (embedded Chroma), once."""
    with FakeTelegram() as tg:
        path = tmp_path_factory.mktemp("polling-kb")
        PollingBot(tg, path, f"sqlite+aiosqlite:///{path / 'unused.db'}").ingest()
    yield path


@dataclass
class Deployment:
    tg: FakeTelegram
    bot: PollingBot
    records: Records

    def logs(self) -> str:
        return self.bot.logs()

    def restart_after_kill(self) -> int:
        """SIGKILL the process (Telegram keeps nothing to deliver again), clear the
        faults, start a new process; returns the fake's ``mark()`` from before the start."""
        tg = self.tg
        eventually(lambda: not tg.pending_updates, 10, "the updates confirmed", every=0.05)
        self.bot.kill()
        assert not tg.pending_updates, "long polling: Telegram will not deliver them again"
        tg.clear_faults()
        mark = tg.mark()
        self.bot.start()
        return mark

    def settle(self, timeout: float = 90.0) -> None:
        """Until the outbox is empty and the bot has been quiet for a while (so that a
        late duplicate would have shown up)."""
        eventually(lambda: self.records.outbox_waiting() == 0, timeout, "the outbox to drain")
        self.tg.wait_idle(timeout=timeout, quiet=3.0)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, knowledge: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    data = tmp_path_factory.mktemp(f"polling-{request.param}") / "data"
    shutil.copytree(knowledge, data)
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{data / 'gradguide.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with FakeTelegram(fail_on_violations=True) as tg:
        tg.forum(FORUM, "Counsellors")
        bot = PollingBot(tg, data, url, **SETTINGS)
        bot.start()
        try:
            yield Deployment(tg, bot, Records(url))
        finally:
            bot.stop()


def exactly_once(records: list[SentRecord], text: str) -> SentRecord:
    found = containing(records, text)
    assert len(found) == 1, [r.text for r in records]
    return found[0]


def no_update_left_processing(deployment: Deployment) -> None:
    assert deployment.records.processing() == []


def ticket_with_topic(deployment: Deployment, user: FakeUser) -> Ticket:
    """/human, and the ticket's topic with its card in the counsellors' forum."""
    tg, records = deployment.tg, deployment.records
    tg.send_command(user, "human")

    def ready() -> Ticket | None:
        tickets = [t for t in records.tickets_of(user) if t.is_open and t.topic_id is not None]
        if not tickets:
            return None
        ticket = tickets[-1]
        card = [r for r in topic_of(tg, ticket) if f"claim:{ticket.id}" in r.callback_data]
        return ticket if card else None

    ticket = eventually(ready, 60, "the ticket, its topic and its card", every=0.3)
    tg.wait_idle(timeout=30, quiet=0.5)
    return ticket


# -- the tests ------------------------------------------------------------------------------


def test_an_answer_waiting_out_a_429_is_delivered_once_after_a_sigkill(
    deployment: Deployment,
) -> None:
    tg = deployment.tg
    user = graduate(tg)
    question, fact = QUESTIONS["zh"][0]
    tg.wait_idle(timeout=30, quiet=0.5)
    calls, start = len(tg.requests), tg.mark()
    tg.fail("sendMessage", "429", retry_after=LONG_429_S)
    tg.send_text(user, question)
    tg.wait_for_call(
        "sendMessage",
        since=calls,
        timeout=60,
        predicate=lambda r: str(r.params.get("chat_id")) == str(user.id),
    )
    assert not chat_of(tg, user, start), "nothing delivered before the kill"

    deployment.restart_after_kill()
    tg.wait_for(chat=user, text=fact, since=start, timeout=60)
    deployment.settle()
    exactly_once(chat_of(tg, user, start), fact)
    no_update_left_processing(deployment)


def test_a_graduate_message_being_relayed_to_the_counsellors_arrives_once_after_a_sigkill(
    deployment: Deployment,
) -> None:
    tg = deployment.tg
    user = graduate(tg)
    ticket = ticket_with_topic(deployment, user)
    calls, start = len(tg.requests), tg.mark()
    tg.fail("copyMessage", "429", retry_after=LONG_429_S)
    tg.send_text(user, "补充情况：合同第三条写的是两年")
    tg.wait_for_call("copyMessage", since=calls, timeout=30)

    deployment.restart_after_kill()
    tg.wait_for(chat=FORUM, thread_id=ticket.topic_id, text="合同第三条", since=start, timeout=60)
    deployment.settle()
    exactly_once(topic_of(tg, ticket, start), "合同第三条")
    no_update_left_processing(deployment)


def test_a_counsellor_reply_being_relayed_to_the_graduate_arrives_once_after_a_sigkill(
    deployment: Deployment,
) -> None:
    tg = deployment.tg
    teacher = counsellor(tg)
    user = graduate(tg)
    ticket = ticket_with_topic(deployment, user)
    mark = tg.mark()
    tg.send_command(teacher, "claim", chat=FORUM, thread_id=ticket.topic_id)
    tg.wait_for(chat=user, text=shown("tg_counsellor_joined", "zh"), since=mark, timeout=30)
    tg.wait_idle(timeout=30, quiet=0.5)
    calls, start = len(tg.requests), tg.mark()
    tg.fail("sendMessage", "429", retry_after=LONG_429_S)
    tg.send_text(teacher, "老师的回复：试用期最多两个月", chat=FORUM, thread_id=ticket.topic_id)
    tg.wait_for_call(
        "sendMessage",
        since=calls,
        timeout=30,
        predicate=lambda r: str(r.params.get("chat_id")) == str(user.id),
    )

    deployment.restart_after_kill()
    tg.wait_for(chat=user, text="试用期最多两个月", since=start, timeout=60)
    deployment.settle()
    exactly_once(chat_of(tg, user, start), "试用期最多两个月")
    no_update_left_processing(deployment)


def test_a_question_killed_before_it_was_answered_is_answered_once_after_the_restart(
    deployment: Deployment,
) -> None:
    """Killed before anything was decided (the typing indicator is hanging): the update,
    confirmed to Telegram and left 'processing', is taken up again by the next process."""
    tg = deployment.tg
    user = graduate(tg)
    question, fact = QUESTIONS["zh"][1]
    tg.wait_idle(timeout=30, quiet=0.5)
    calls, start = len(tg.requests), tg.mark()
    tg.timeout_hold_s = 20.0  # the request hangs (the client would give up after 15 s)
    tg.fail("sendChatAction", "timeout")
    try:
        tg.send_text(user, question)
        tg.wait_for_call("sendChatAction", since=calls, timeout=30)
        deployment.restart_after_kill()
    finally:
        tg.timeout_hold_s = 3.0
    tg.wait_for(chat=user, text=fact, since=start, timeout=60)
    deployment.settle()
    exactly_once(chat_of(tg, user, start), fact)
    no_update_left_processing(deployment)
