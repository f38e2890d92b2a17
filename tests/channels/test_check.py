"""``gradguide check`` against the fake Bot API: a set-up that works, and the ways a counsellor
group goes wrong (not a forum, the bot without the right to manage topics, a counsellor who is
not in it, a wrong token), each with its fix; ``serve`` refuses to start on a group tickets
could not reach; ``/ids`` tells people the ids the settings need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.channels.telegram.check import check_webhook
from bot.check import Status
from bot.prompts import Messages
from bot.settings import Settings
from tests.channels.conftest import ADMIN, COUNSELLOR, FORUM, GRADUATE, Bot
from tests.channels.test_reliability import gradguide
from tests.conftest import run_cli
from tests.fakes.telegram_server import FakeTelegram

GROUP = -1009876543210


@pytest.fixture
def fake() -> FakeTelegram:
    with FakeTelegram() as tg:
        tg.user(COUNSELLOR, "李老师")
        tg.user(ADMIN, "Admin")
        yield tg


def check(
    fake: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    chat: int = FORUM,
    token: str | None = None,
) -> tuple[int, str]:
    for name, value in {
        "TELEGRAM_BOT_TOKEN": token or fake.token,
        "GRADGUIDE_TELEGRAM_API_URL": fake.base_url,
        "GRADGUIDE_DATA_DIR": str(tmp_path / "data"),
        "GRADGUIDE_COUNSELLOR_CHAT_ID": str(chat),
        "GRADGUIDE_COUNSELLOR_IDS": str(COUNSELLOR),
        "GRADGUIDE_ADMIN_IDS": str(ADMIN),
        "GRADGUIDE_EMBEDDING": "hash",
        "COLUMNS": "300",
    }.items():
        monkeypatch.setenv(name, value)
    code, out, err = run_cli(capsys, "check")
    assert "Traceback" not in out + err
    return code, out


def rows(out: str, mark: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"│ {mark} │")]


def test_a_working_set_up_passes_and_leaves_no_data_dir_behind(
    fake: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.forum(FORUM, "就业指导老师", members=[COUNSELLOR], admins=[ADMIN])
    code, out = check(fake, tmp_path, monkeypatch, capsys)
    assert code == 0, out
    assert rows(out, "✗") == []
    assert any("就业指导老师" in row and "a forum" in row for row in rows(out, "✓"))
    assert any("can manage topics" in row for row in rows(out, "✓"))
    assert any(f"counsellor 李老师 ({COUNSELLOR}) is in the group" in r for r in rows(out, "✓"))
    # a fresh machine: the data directory, database and index are still to come
    assert any("does not exist yet" in row for row in rows(out, "!"))
    assert not (tmp_path / "data").exists()


def test_a_group_that_is_not_a_forum_fails_with_how_to_turn_topics_on(
    fake: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.group(GROUP, "老师群", members=[COUNSELLOR, ADMIN])
    code, out = check(fake, tmp_path, monkeypatch, capsys, chat=GROUP)
    assert code == 1
    (row,) = [r for r in rows(out, "✗") if "not a forum" in r]
    assert "老师群" in row and "turn on Topics" in row


@pytest.mark.parametrize(
    ("rights", "said"),
    [
        ({"bot_can_manage_topics": False}, ["without the right to manage topics", "Manage topics"]),
        ({"bot_status": "member"}, ["not an administrator", "manage topics"]),
    ],
    ids=["no-topic-rights", "only-a-member"],
)
def test_a_bot_that_cannot_make_topics_fails_with_the_right_to_give_it(
    fake: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rights: dict[str, Any],
    said: list[str],
) -> None:
    fake.forum(FORUM, "老师群", members=[COUNSELLOR, ADMIN], **rights)
    code, out = check(fake, tmp_path, monkeypatch, capsys)
    assert code == 1
    (row,) = rows(out, "✗")
    assert all(words in row for words in said), row


def test_a_counsellor_outside_the_group_is_named(
    fake: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.forum(FORUM, "老师群", admins=[ADMIN])
    code, out = check(fake, tmp_path, monkeypatch, capsys)
    assert code == 1
    (row,) = rows(out, "✗")
    assert f"counsellor {COUNSELLOR} is not in the counsellor group" in row
    assert "add them to the group" in row


def test_a_wrong_token_fails_without_echoing_it(
    fake: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.forum(FORUM, "老师群", members=[COUNSELLOR, ADMIN])
    code, out = check(fake, tmp_path, monkeypatch, capsys, token="000:wrong-token")
    assert code == 1
    (row,) = rows(out, "✗")
    assert "Telegram rejected the bot token" in row
    assert "wrong-token" not in out


def test_serve_refuses_to_start_on_a_group_that_is_not_a_forum(tmp_path: Path) -> None:
    with FakeTelegram() as tg:
        tg.group(GROUP, "老师群")
        result = gradguide(
            {
                "GRADGUIDE_DATA_DIR": str(tmp_path / "data"),
                "TELEGRAM_BOT_TOKEN": tg.token,
                "GRADGUIDE_TELEGRAM_API_URL": tg.base_url,
                "GRADGUIDE_COUNSELLOR_CHAT_ID": str(GROUP),
                "GRADGUIDE_EMBEDDING": "hash",
            },
            "serve",
            cwd=tmp_path,
        )
        assert not tg.calls("getUpdates"), "it never started polling"
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: “老师群” is not a forum")
    assert "turn on Topics" in last
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_ids_shows_a_persons_id_in_private_and_the_groups_id_in_a_group(
    tg: FakeTelegram, bot: Bot
) -> None:
    messages = Messages.load()
    alice = tg.user(GRADUATE, "张三", language_code="zh")
    mark = tg.mark()
    tg.send_command(alice, "ids")
    private = await tg.await_for(chat=GRADUATE, since=mark, timeout=20)
    assert str(GRADUATE) in (private.text or "")
    assert (private.text or "").startswith(
        messages.get("tg_ids_private", "zh", user_id=GRADUATE).split("<b>")[0]
    )

    admin = tg.user(ADMIN, "Admin", language_code="en")
    tg.group(GROUP, "Counsellors to be", members=[ADMIN])
    mark = tg.mark()
    tg.send_command(admin, "ids", chat=GROUP)
    shown = await tg.await_for(chat=GROUP, since=mark, timeout=20)
    text = shown.text or ""
    assert str(GROUP) in text and str(ADMIN) in text and "turn on Topics" in text
    assert await bot.store.get_user(telegram_id=ADMIN) is None, "nothing is stored"


@pytest.mark.parametrize(
    ("api", "url", "status"),
    [
        ("https://api.telegram.org", "http://bot.example.edu/telegram", Status.ERROR),
        ("http://127.0.0.1:8081", "http://10.0.0.5:8443/telegram", Status.WARN),  # self-hosted
        ("https://api.telegram.org", "https://bot.example.edu/telegram", Status.WARN),  # no secret
    ],
)
def test_a_webhook_telegram_cannot_call_is_an_error(api: str, url: str, status: Status) -> None:
    settings = Settings(telegram_api_url=api, webhook_url=url)
    (finding,) = check_webhook(settings)
    assert finding.status is status
