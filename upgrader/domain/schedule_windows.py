"""Maintenance windows: when, in a cluster's own time zone, a scheduled tick may change the cluster.

A window is a set of weekdays and a wall-clock span, ``sat 02:00-06:00``. Its occurrences are
computed in the schedule's zone, so they follow daylight saving time: a wall time that does not
exist (the spring-forward gap) moves forward to the first instant that does, and a wall time that
happens twice (fall back) is taken the first time. In Europe/Berlin ``sun 02:00-06:00`` therefore
lasts 3 hours on the spring-forward Sunday and 5 hours on the fall-back one. A window whose end is
before its start crosses midnight: it starts on the listed day and ends on the next.

Occurrences that overlap or touch are merged (``sat 22:00-24:00`` and ``sun 00:00-06:00`` are one
stretch of 8 hours), so a run is never paused at a seam where the next window opens at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from upgrader.domain.text import excerpt
from upgrader.errors import InvalidScheduleError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {name: i for i, name in enumerate(DAY_NAMES)} | {name: i for i, name in enumerate(_FULL_NAMES)}
_EVERY_DAY = ("daily", "*")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})", re.ASCII)
DAY_MINUTES = 24 * 60
_SHAPE = "expected DAYS HH:MM-HH:MM"
_Fail = Callable[[str], InvalidScheduleError]  # makes the one-line error that names the option and input


@dataclass(frozen=True, slots=True)
class Window:
    """Weekdays (0 = Monday .. 6 = Sunday) and minutes of the day; ``end`` may be 1440 (24:00).

    ``text`` is the canonical spelling (``mon-fri 22:00-02:00``) that :func:`parse_window` reads back
    to an equal window."""

    days: frozenset[int]
    start: int
    end: int
    text: str

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def to_text(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One stretch of open window, as aware UTC instants; ``start`` is in it, ``end`` is not."""

    start: datetime
    end: datetime

    def __contains__(self, instant: object) -> bool:
        return isinstance(instant, datetime) and self.start <= instant < self.end

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def window(days: Iterable[int], start: int, end: int) -> Window:
    """A window from its parts, with its canonical text; the parts must already be valid."""
    chosen = frozenset(days)
    return Window(chosen, start, end, f"{format_days(chosen)} {format_minute(start)}-{format_minute(end)}")


def parse_window(text: str, *, option: str = "--window") -> Window:
    """``DAYS HH:MM-HH:MM``: days are ``mon``..``sun`` (or full names), ranges ``mon-fri`` (``fri-mon``
    wraps), lists ``sat,sun``, or ``daily``/``*``; times 00:00 to 24:00."""

    def fail(why: str) -> InvalidScheduleError:
        return InvalidScheduleError(f"{option} {excerpt(text)}: {why}")

    if not isinstance(text, str):
        raise fail(_SHAPE)
    parts = text.split()
    if len(parts) != 2 or parts[1].count("-") != 1:
        raise fail(_SHAPE)
    days = _parse_days(parts[0], fail)
    first, last = parts[1].split("-")
    start, end = _parse_minute(first, fail), _parse_minute(last, fail)
    if start == DAY_MINUTES:
        raise fail("a window cannot start at 24:00 (start at 00:00 of the next day)")
    if start == end:
        raise fail(f"it starts and ends at {first} (for a whole day write 00:00-24:00)")
    return window(days, start, end)


def _parse_days(text: str, fail: _Fail) -> frozenset[int]:
    days: set[int] = set()
    for token in text.lower().split(","):
        if token in _EVERY_DAY:
            days.update(range(7))
        elif token.count("-") == 1:
            first, last = (_day(part, fail) for part in token.split("-"))
            days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
        else:
            days.add(_day(token, fail))
    return frozenset(days)


def _day(token: str, fail: _Fail) -> int:
    if token not in _DAYS:
        raise fail(f"{excerpt(token)} is not a day (mon..sun, a range mon-fri, a list sat,sun, or daily)")
    return _DAYS[token]


def _parse_minute(text: str, fail: _Fail) -> int:
    m = _TIME.fullmatch(text)
    if not m:
        raise fail(f"{excerpt(text)} is not a time HH:MM ({_SHAPE})")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 24:
        raise fail(f"hour {hour} is not 00-24")
    if minute > 59:
        raise fail(f"minute {minute} is not 00-59")
    if hour == 24 and minute:
        raise fail(f"{text} is past 24:00")
    return hour * 60 + minute


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format_days(days: frozenset[int]) -> str:
    """``daily``, or runs of days from the one after the last missing day: ``mon-fri``, ``sat,sun``,
    ``fri-mon``, ``mon,wed``."""
    if len(days) == 7:
        return "daily"
    last_missing = max(d for d in range(7) if d not in days)
    order = [(last_missing + 1 + i) % 7 for i in range(7)]
    runs: list[list[int]] = []
    for previous, day in zip([None, *order], order, strict=False):
        if day in days:
            if previous is not None and previous in days and runs:
                runs[-1].append(day)
            else:
                runs.append([day])
    parts = []
    for run in runs:
        names = [DAY_NAMES[d] for d in run]
        parts.append(f"{names[0]}-{names[-1]}" if len(run) > 2 else ",".join(names))
    return ",".join(parts)


def wall_to_utc(day: date, minute: int, tz: tzinfo) -> datetime:
    """The UTC instant of a wall time in ``tz``: a time in a DST gap moves forward to the first valid
    instant (the transition), an ambiguous one is taken the first time (fold=0)."""
    naive = datetime.combine(day, time()) + timedelta(minutes=minute)
    earlier = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if earlier.astimezone(tz).replace(tzinfo=None) == naive:
        return earlier
    # In a gap: fold=0 reads it with the offset before the transition, fold=1 with the one after,
    # so the transition lies between the two readings. Find it to the second.
    later = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = (int(t.timestamp()) for t in sorted((earlier, later)))
    after = datetime.fromtimestamp(high, UTC).astimezone(tz).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(tz).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def occurrences(windows: Sequence[Window], tz: tzinfo, first: date, last: date) -> list[Occurrence]:
    """Every window's occurrences that start on a local day from ``first`` to ``last``, merged where
    they overlap or touch, in order."""
    found: list[Occurrence] = []
    day = first
    while day <= last:
        for w in windows:
            if day.weekday() in w.days:
                ends_on = day + timedelta(days=1) if w.end <= w.start else day
                start, end = wall_to_utc(day, w.start, tz), wall_to_utc(ends_on, w.end, tz)
                if end > start:  # a window inside a DST gap has no time at all that day
                    found.append(Occurrence(start, end))
        day += timedelta(days=1)
    return _merge(found)


def _merge(found: list[Occurrence]) -> list[Occurrence]:
    merged: list[Occurrence] = []
    for o in sorted(found, key=lambda o: (o.start, o.end)):
        if merged and o.start <= merged[-1].end:
            merged[-1] = Occurrence(merged[-1].start, max(merged[-1].end, o.end))
        else:
            merged.append(o)
    return merged


# Looking a week and a day ahead finds the next occurrence of any weekly window; a window open all
# week long (daily 00:00-24:00) is reported as one stretch ending that far ahead.
_AHEAD_DAYS = 8


def window_at(windows: Sequence[Window], tz: tzinfo, now: datetime) -> Occurrence | None:
    """The open window containing ``now`` (one that began the day before and crosses midnight too)."""
    return windows_around(windows, tz, now)[0]


def next_window(windows: Sequence[Window], tz: tzinfo, now: datetime) -> Occurrence | None:
    """The earliest window opening after ``now`` (the one containing ``now`` does not count)."""
    return windows_around(windows, tz, now)[1]


def windows_around(windows: Sequence[Window], tz: tzinfo, now: datetime) -> tuple[Occurrence | None,
                                                                                 Occurrence | None]:
    """:func:`window_at` and :func:`next_window` together, from one reckoning of the occurrences
    (a tick asks both for every cluster outside its windows)."""
    today = require_aware(now).astimezone(tz).date()
    found = occurrences(windows, tz, today - timedelta(days=1), today + timedelta(days=_AHEAD_DAYS))
    current = next((o for o in found if now in o), None)
    upcoming = next((o for o in found if o.start > now), None)
    return current, upcoming


def require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("a schedule's clock must be an aware datetime")
    return now
