"""Dates in answers are read against the day the question is asked: documents state dates,
never "today", and the answer says whether a window is open, closed or still to come."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from bot.agent.agent import Agent
from bot.agent.dates import Status, Window, current, windows
from bot.agent.models import Conversation
from bot.kb.models import Lang
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages
from bot.settings import BUNDLED_KNOWLEDGE_DIR, Settings
from tests.conftest import DocWriter

MESSAGES = Messages.load()
D = dt.date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("上半年报名2025年12月5日至2026年2月10日", [Window(D(2025, 12, 5), D(2026, 2, 10))]),
        ("女青年上半年报名2026年1月1日至2月10日", [Window(D(2026, 1, 1), D(2026, 2, 10))]),
        ("网上报名时间为2025年10月15日至24日", [Window(D(2025, 10, 15), D(2025, 10, 24))]),
        ("spring intake 1 January – 10 February 2026", [Window(D(2026, 1, 1), D(2026, 2, 10))]),
        ("Registration ran 15–24 October 2025.", [Window(D(2025, 10, 15), D(2025, 10, 24))]),
        ("申请截止日期为2026年12月31日", [Window(None, D(2026, 12, 31))]),
        ("the deadline is 31 December 2026", [Window(None, D(2026, 12, 31))]),
        ("本办法自2022年1月1日起施行", []),
        ("It was announced on 5 May 2022.", []),
        ("报名一般在每年4月至5月开放", []),
    ],
)
def test_windows_are_ranges_and_named_deadlines_not_every_date(
    text: str, expected: list[Window]
) -> None:
    assert windows(text) == expected


def test_the_window_that_matters_today_comes_first() -> None:
    text = "上半年报名2026年1月1日至2月10日；下半年报名2026年7月1日至8月10日。"
    assert current(text, D(2026, 1, 20)) == (Status.OPEN, Window(D(2026, 1, 1), D(2026, 2, 10)))
    assert current(text, D(2026, 3, 1)) == (Status.UPCOMING, Window(D(2026, 7, 1), D(2026, 8, 10)))
    assert current(text, D(2026, 12, 7)) == (Status.PASSED, Window(D(2026, 7, 1), D(2026, 8, 10)))
    assert current("试用期最长六个月。", D(2026, 12, 7)) is None


class Today:
    def __init__(self, day: dt.date) -> None:
        self.day = day

    def __call__(self) -> dt.date:
        return self.day


@pytest.mark.parametrize(
    ("lang", "body", "question", "days"),
    [
        (
            "zh",
            "## 报名时间\n\n2026年度征兵报名时间为2026年7月1日至8月10日，在全国征兵网报名。\n",
            "征兵报名时间是什么时候",
            ("2026年6月1日", "2026年7月1日", "2026年8月1日", "2026年8月10日", "2026年12月7日"),
        ),
        (
            "en",
            "## Registration\n\nRegistration for enlistment runs from 1 July to 10 August 2026 "
            "on the national conscription website.\n",
            "When is enlistment registration?",
            ("1 June 2026", "1 July 2026", "1 August 2026", "10 August 2026", "7 December 2026"),
        ),
    ],
    ids=["zh", "en"],
)
def test_an_answer_says_whether_its_window_is_open_closed_or_to_come_on_the_day_asked(
    settings: Settings,
    write_doc: DocWriter,
    lang: Lang,
    body: str,
    question: str,
    days: tuple[str, ...],
) -> None:
    write_doc(
        f"enlist-window-{lang}", body, title="征兵报名" if lang == "zh" else "Enlistment", lang=lang
    )
    today = Today(D(2026, 6, 1))
    kb = KnowledgeBase.open(settings, clock=today)
    assert not kb.ingest([settings.knowledge_dir]).failed
    agent = Agent(kb, kb.settings)
    june, opens, august, closes, december = days

    def answer() -> str:
        return agent.reply(Conversation(), question).text

    upcoming = MESSAGES.get("date_window_upcoming", lang, today=june, start=opens)
    assert upcoming in answer()
    today.day = D(2026, 8, 1)
    still_open = MESSAGES.get("date_window_open", lang, today=august, end=closes, days=9)
    assert still_open in answer()
    today.day = D(2026, 12, 7)
    passed = MESSAGES.get("date_window_passed", lang, today=december, end=closes)
    assert passed in answer()


def test_no_bundled_document_or_card_says_what_today_is() -> None:
    """ "今天是2026年11月" was wrong a month later: the bundled knowledge states dates only."""
    relative = re.compile(r"今天是|目前已经(?:结束|截止)|现在(?:两次报名)?都已截止|现已结束")
    offenders = [
        f"{path.relative_to(BUNDLED_KNOWLEDGE_DIR)}: {match.group(0)}"
        for path in sorted(BUNDLED_KNOWLEDGE_DIR.rglob("*"))
        if path.suffix in {".md", ".yaml", ".txt"} and path.name != "README.md"
        for match in relative.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
