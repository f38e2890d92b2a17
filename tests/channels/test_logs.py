"""The bot's logs, at their most verbose, never hold a graduate's phone or ID number: what
`gradguide serve` installs (``install_log_redaction``) covers every logger, python-telegram-
bot's request dumps and tracebacks included."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.privacy import install_log_redaction
from tests.channels.conftest import COUNSELLOR, FORUM, GRADUATE, TINY_DOC, Stack
from tests.fakes.telegram_server import FakeTelegram

PHONE = "13812345678"
ID_NUMBER = "11010519491231002X"

ONE_STACK = pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
ROOT = Path(__file__).resolve().parents[2]


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


@ONE_STACK
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


def test_a_running_bot_does_not_log_every_job_run(tmp_path: Path) -> None:
    """``gradguide serve`` at INFO: the outbox job runs every 2 s, and APScheduler used to
    log two INFO lines for each run ("Running job …", "… executed successfully"), burying
    what matters. The bot's own INFO lines stay. The job is shown to have run: the answer
    reaches the graduate only through it (Telegram failed every attempt to send it at once)."""
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "tiny-probation-zh.md").write_text(TINY_DOC, encoding="utf-8")
    log = tmp_path / "serve.log"
    with FakeTelegram() as tg:
        tg.forum(FORUM, "GradGuide counsellors")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "TELEGRAM_BOT_TOKEN": tg.token,
            "GRADGUIDE_TELEGRAM_API_URL": tg.base_url,
            "GRADGUIDE_DATA_DIR": str(tmp_path / "data"),
            "GRADGUIDE_KNOWLEDGE_DIR": str(knowledge),
            "GRADGUIDE_EMBEDDING": "hash",
            "GRADGUIDE_COUNSELLOR_CHAT_ID": str(FORUM),
            "GRADGUIDE_LOG_LEVEL": "INFO",
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 240
            while not tg.calls("getUpdates"):
                assert process.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, "gradguide serve did not start polling"
                time.sleep(0.1)
            graduate = tg.user(GRADUATE, "张三", language_code="zh")
            tg.fail("sendMessage", "500", times=4)  # the gateway's every attempt
            tg.send_text(graduate, "试用期最长多久？")
            tg.wait_for(chat=GRADUATE, method="sendMessage", timeout=60)
            assert len(tg.injected) == 4, "the answer was sent by the outbox job"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    text = log.read_text(errors="replace")
    assert "INFO bot." in text, "the bot's own INFO lines are there"
    for line in text.splitlines():
        assert not line.startswith("INFO apscheduler"), line
    assert "Running job" not in text and "executed successfully" not in text
