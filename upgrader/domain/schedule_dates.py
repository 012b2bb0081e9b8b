"""Freezes and ages: the calendar side of a schedule.

A freeze is a span of whole days (both ends included) in the schedule's zone when nothing is
upgraded, ``2026-12-20..2027-01-05``. An age is a duration as an operator types it (``14d``,
``36h``, ``90m``, ``2w``, ``0``), used for how old a release must be before the ``minor`` channel
takes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from upgrader.domain.schedule_windows import require_aware
from upgrader.domain.text import excerpt
from upgrader.errors import InvalidScheduleError

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_AGE = re.compile(r"([0-9]{1,7})([wdhm])", re.ASCII)
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60}
MAX_AGE_SECONDS = 365 * 86400.0
_Fail = Callable[[str], InvalidScheduleError]


@dataclass(frozen=True, slots=True)
class Freeze:
    """No upgrades from ``start`` to ``end``, both whole days included, in the schedule's zone."""

    start: date
    end: date

    def to_text(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


def parse_freeze(text: str, *, option: str = "--freeze") -> Freeze:
    """``YYYY-MM-DD..YYYY-MM-DD`` (a single ``YYYY-MM-DD`` freezes that one day)."""

    def fail(why: str) -> InvalidScheduleError:
        return InvalidScheduleError(f"{option} {excerpt(text)}: {why}")

    if not isinstance(text, str):
        raise fail("expected FIRST..LAST, e.g. 2026-12-20..2027-01-05")
    parts = text.strip().split("..")
    if len(parts) > 2:
        raise fail("expected FIRST..LAST, e.g. 2026-12-20..2027-01-05")
    days = [_date(part, fail) for part in parts]
    start, end = days[0], days[-1]
    if end < start:
        raise fail(f"it ends ({end}) before it starts ({start})")
    return Freeze(start, end)


def _date(text: str, fail: _Fail) -> date:
    if not _DATE.fullmatch(text):
        raise fail(f"{excerpt(text)} is not a date YYYY-MM-DD (expected FIRST..LAST, e.g. 2026-12-20..2027-01-05)")
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise fail(f"{text} is not a date: {e}") from e


def frozen(freezes: Sequence[Freeze], tz: tzinfo, now: datetime) -> Freeze | None:
    """The freeze that covers ``now``'s day in ``tz``, or None."""
    today = require_aware(now).astimezone(tz).date()
    return next((f for f in freezes if f.covers(today)), None)


def parse_age(text: str, option: str = "--min-release-age") -> float:
    """``14d``, ``36h``, ``90m``, ``2w`` or ``0``, as seconds, at most 365 days."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    if cleaned == "0":
        return 0.0
    m = _AGE.fullmatch(cleaned)
    if not m:
        raise InvalidScheduleError(
            f"{option} {excerpt(text)}: expected a whole number and a unit w, d, h or m (14d, 36h, 90m, 2w) or 0")
    seconds = float(int(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    if seconds > MAX_AGE_SECONDS:
        raise InvalidScheduleError(f"{option} {excerpt(text)}: at most 365d")
    return seconds


def format_age(seconds: float) -> str:
    """The shortest exact spelling ``parse_age`` reads back: ``14d``, ``36h``, ``90m``; ``0``."""
    whole = round(seconds)
    if whole == 0:
        return "0"
    for unit in ("d", "h"):  # days before weeks: "14d" is how operators write it
        if whole % _UNIT_SECONDS[unit] == 0:
            return f"{whole // _UNIT_SECONDS[unit]}{unit}"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


def describe_duration(seconds: float) -> str:
    """A rough human length for messages, rounded down: ``3 days``, ``5 hours``, ``12 minutes``."""
    unit, size = next(((u, s) for u, s in (("day", 86400), ("hour", 3600)) if seconds >= s), ("minute", 60))
    count = max(0, int(seconds // size))
    return f"{count} {unit}{'' if count == 1 else 's'}"
