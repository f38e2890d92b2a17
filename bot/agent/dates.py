"""Windows and deadlines in a quoted passage, read against today.

Documents state dates, never "today" ("2026年度报名时间为2025年10月15日至24日", not "今天是
2026年11月，报名已结束"): whether a window is open, closed or still to come is worked out when
the answer is made, with the knowledge base's clock. Only a range (X至Y, X – Y, from X to Y)
or a date named as a deadline (截止, deadline, by …) counts; a date a rule took effect on is
history, not a window.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))

# one date, with its year or month possibly left to its neighbour ("1 January – 10 February
# 2026", "2025年10月15日至24日")
_ZH = r"(?:(?P<zy>\d{4})\s*年\s*)?(?:(?P<zm>\d{1,2})\s*月\s*)?(?P<zd>\d{1,2})\s*[日号]"
_EN_DMY = rf"(?P<ed>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<em>{_MONTH})\.?(?:,?\s+(?P<ey>\d{{4}}))?"
_EN_MDY = rf"(?P<fm>{_MONTH})\.?\s+(?P<fd>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<fy>\d{{4}}))?"
_ISO = r"(?P<iy>\d{4})-(?P<im>\d{1,2})-(?P<id>\d{1,2})"
_DATE = re.compile(rf"{_ISO}|{_ZH}|{_EN_DMY}|{_EN_MDY}", re.IGNORECASE)
_RANGE_JOIN = re.compile(r"^\s*(?:至|到|~|～|-|–|—|to|until|till|through)\s*$", re.IGNORECASE)
_RANGE_FROM = re.compile(r"(?:from|between)\s*$", re.IGNORECASE)
_DEADLINE_BEFORE = re.compile(
    r"(?:截止(?:日期|时间)?(?:为|是|到)?|截至|不晚于|最迟(?:于|在)?"
    r"|deadline(?: is)?|closes?(?: on)?|no later than|apply by)\s*$",
    re.IGNORECASE,
)
_DEADLINE_AFTER = re.compile(r"^\s*(?:截止|止)")


@dataclass(frozen=True)
class _Found:
    year: int | None
    month: int | None
    day: int
    start: int
    end: int


class Status(enum.StrEnum):
    PASSED = "passed"
    OPEN = "open"
    UPCOMING = "upcoming"


@dataclass(frozen=True)
class Window:
    """A period a passage names: ``start`` is None for a bare deadline."""

    start: dt.date | None
    end: dt.date

    def status(self, today: dt.date) -> Status:
        if self.end < today:
            return Status.PASSED
        if self.start is not None and today < self.start:
            return Status.UPCOMING
        return Status.OPEN


def _found(match: re.Match[str]) -> _Found | None:
    g = match.groupdict()
    if g["iy"]:
        return _Found(int(g["iy"]), int(g["im"]), int(g["id"]), match.start(), match.end())
    if g["zd"]:
        year = int(g["zy"]) if g["zy"] else None
        month = int(g["zm"]) if g["zm"] else None
        return _Found(year, month, int(g["zd"]), match.start(), match.end())
    month_name = g["em"] or g["fm"]
    day = g["ed"] or g["fd"]
    en_year = g["ey"] or g["fy"]
    if month_name is None or day is None:
        return None
    return _Found(
        int(en_year) if en_year else None,
        _MONTHS[month_name.lower().rstrip(".")],
        int(day),
        match.start(),
        match.end(),
    )


def _date(year: int | None, month: int | None, day: int) -> dt.date | None:
    if year is None or month is None:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


_EN_DAY_RANGE = re.compile(rf"\b(\d{{1,2}})\s*[–—-]\s*(\d{{1,2}})\s+({_MONTH})\b", re.IGNORECASE)


def format_date(day: dt.date, lang: str) -> str:
    """2026年12月7日 / 7 December 2026."""
    if lang == "zh":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {_MONTH_NAMES[day.month - 1]} {day.year}"


def windows(text: str) -> list[Window]:
    """The ranges and deadlines ``text`` names, with a missing year or month taken from the
    other end of the range (or, for a range's end, from its start)."""
    text = _EN_DAY_RANGE.sub(r"\1 \3 – \2 \3", text)  # 15–24 October → 15 October – 24 October
    found = [f for f in (_found(m) for m in _DATE.finditer(text)) if f is not None]
    result: list[Window] = []
    i = 0
    while i < len(found):
        first = found[i]
        if i + 1 < len(found) and _RANGE_JOIN.match(text[first.end : found[i + 1].start]):
            second = found[i + 1]
            end_year = second.year or first.year
            end_month = second.month or first.month
            start = _date(first.year or end_year, first.month or end_month, first.day)
            end = _date(end_year, end_month, second.day)
            if start is not None and end is not None and start <= end:
                result.append(Window(start, end))
            i += 2
            continue
        before = text[max(0, first.start - 16) : first.start]
        after = text[first.end : first.end + 4]
        if _DEADLINE_BEFORE.search(before) or _DEADLINE_AFTER.match(after):
            end = _date(first.year, first.month, first.day)
            if end is not None and not _RANGE_FROM.search(before):
                result.append(Window(None, end))
        i += 1
    return result


def current(text: str, today: dt.date) -> tuple[Status, Window] | None:
    """What a graduate reading ``text`` today needs to know first: the window open now that
    closes soonest, else the next to open, else the last that closed (None: no window)."""
    found = windows(text)
    open_now = [w for w in found if w.status(today) is Status.OPEN]
    if open_now:
        return Status.OPEN, min(open_now, key=lambda w: w.end)
    upcoming = [w for w in found if w.status(today) is Status.UPCOMING]
    if upcoming:
        return Status.UPCOMING, min(upcoming, key=lambda w: w.start or w.end)
    if found:
        return Status.PASSED, max(found, key=lambda w: w.end)
    return None
