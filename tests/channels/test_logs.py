"""The bot's logs, at their most verbose, never hold a graduate's phone or ID number: what
`gradguide serve` installs (``install_log_redaction``) covers every logger, python-telegram-
bot's request dumps and tracebacks included."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.agent.redact import install_log_redaction
from tests.channels.conftest import COUNSELLOR, FORUM, GRADUATE, Stack
from tests.fakes.telegram_server import FakeTelegram

PHONE = "13812345678"
ID_NUMBER = "11010519491231002X"

pytestmark = pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    install_log_redaction()
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_phone_and_id_numbers_never_reach_the_logs(
    tg: FakeTelegram, stack: Stack, debug_log: io.StringIO
) -> None:
    await stack.start_bot()
    graduate = tg.user(GRADUATE, "张三", language_code="zh")
    counsellor = tg.user(COUNSELLOR, "李老师", language_code="zh")
    mark = tg.mark()
    tg.send_text(graduate, f"公司拖欠我三个月工资怎么办？我的电话{PHONE}，身份证{ID_NUMBER}")
    await tg.await_for(chat=GRADUATE, since=mark)
    mark = tg.mark()
    tg.send_command(graduate, "human")
    topic = await tg.await_for(chat=FORUM, since=mark, method="sendMessage")
    mark = tg.mark()
    tg.send_text(graduate, f"再说一遍，电话 {PHONE[:3]} {PHONE[3:7]} {PHONE[7:]}")
    await tg.await_for(chat=FORUM, since=mark)
    mark = tg.mark()
    reply = f"好的，我会打 {PHONE} 联系你"
    tg.send_text(counsellor, reply, chat=FORUM, thread_id=topic.message_thread_id)
    await tg.await_for(chat=GRADUATE, since=mark)
    await tg.await_idle()

    log = debug_log.getvalue()
    assert "sendMessage" in log, "the log is verbose enough to show what was sent"
    assert "[phone]" in log, "what was redacted is marked"
    for secret in (PHONE, ID_NUMBER, f"{PHONE[:3]} {PHONE[3:7]} {PHONE[7:]}"):
        assert secret not in log
