"""Counsellors' office hours (``GRADGUIDE_OFFICE_HOURS``): parsed from a spec such as
'mon-fri 09:00-18:00' and told to graduates in their language. Pure functions of their
arguments, like ``formatting``."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.kb.models import Lang

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_LABELS: dict[Lang, tuple[str, ...]] = {
    "zh": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_EXAMPLE = "e.g. 'mon-fri 09:00-18:00' or 'mon,wed,sat 10:00-16:00'"


@dataclass(frozen=True)
class OfficeHours:
    """When counsellors answer: the same hours on each listed weekday (0 = Monday)."""

    weekdays: frozenset[int]
    start: dt.time
    end: dt.time

    def is_open(self, moment: dt.datetime, tz_name: str) -> bool:
        """Whether ``moment`` (timezone-aware) falls in office hours in the ``tz_name`` zone."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("office hours need a timezone-aware datetime")
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz_name!r}") from exc
        local = moment.astimezone(zone)
        return local.weekday() in self.weekdays and self.start <= local.time() < self.end

    def describe(self, lang: Lang) -> str:
        """周一至周五 09:00–18:00 / Mon–Fri 09:00–18:00."""
        return f"{_describe_days(self.weekdays, lang)} {self.start:%H:%M}–{self.end:%H:%M}"


def _describe_days(weekdays: frozenset[int], lang: Lang) -> str:
    labels = _DAY_LABELS[lang]
    if len(weekdays) == 7:
        return "每天" if lang == "zh" else "Every day"
    runs: list[list[int]] = []
    for day in sorted(weekdays):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    through = "至" if lang == "zh" else "–"
    items: list[str] = []
    for run in runs:
        if len(run) >= 3:
            items.append(f"{labels[run[0]]}{through}{labels[run[-1]]}")
        else:
            items.extend(labels[day] for day in run)
    return ("、" if lang == "zh" else ", ").join(items)


def _parse_day(name: str, spec: str) -> int:
    if name not in _DAY_NAMES:
        days = ", ".join(_DAY_NAMES)
        raise ValueError(f"office hours {spec!r}: unknown day {name!r}; use {days}")
    return _DAY_NAMES.index(name)


def _parse_days(text: str, spec: str) -> frozenset[int]:
    if text in {"daily", "everyday"}:
        return frozenset(range(7))
    days: set[int] = set()
    for item in text.split(","):
        first, dash, last = item.partition("-")
        start = _parse_day(first, spec)
        if not dash:
            days.add(start)
            continue
        stop = _parse_day(last, spec)
        day = start
        days.add(day)
        while day != stop:  # a range may wrap around the week: fri-mon
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


def _parse_time(text: str, spec: str) -> dt.time:
    match = _TIME.fullmatch(text)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"office hours {spec!r}: {text!r} is not a time between 00:00 and 23:59")
    return dt.time(int(match.group(1)), int(match.group(2)))


def parse_office_hours(spec: str) -> OfficeHours:
    """``mon-fri 09:00-18:00`` (days: mon…sun, ranges and commas, or ``daily``)."""
    fields = spec.strip().lower().replace("–", "-").split()
    if len(fields) != 2:
        raise ValueError(f"office hours {spec!r}: expected days then hours, {_EXAMPLE}")
    days, hours = fields
    start_text, dash, end_text = hours.partition("-")
    if not dash:
        raise ValueError(f"office hours {spec!r}: hours must be a range, {_EXAMPLE}")
    start, end = _parse_time(start_text, spec), _parse_time(end_text, spec)
    if start >= end:
        raise ValueError(f"office hours {spec!r}: the end must be after the start")
    return OfficeHours(_parse_days(days, spec), start, end)


def format_office_hours(spec: str, lang: Lang) -> str:
    """``mon-fri 09:00-18:00`` → 周一至周五 09:00–18:00 / Mon–Fri 09:00–18:00."""
    return parse_office_hours(spec).describe(lang)
