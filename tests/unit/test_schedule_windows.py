"""Maintenance windows: parsing, canonical text, and occurrences in a zone across midnight and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.schedule import (
    Occurrence,
    next_window,
    parse_window,
    wall_to_utc,
    window_at,
    windows_around,
)
from upgrader.domain.schedule_windows import window
from upgrader.errors import InvalidScheduleError

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


@pytest.mark.parametrize(("text", "days", "start", "end", "canonical"), [
    ("sat 02:00-06:00", {5}, 120, 360, "sat 02:00-06:00"),
    ("Saturday 02:00-06:00", {5}, 120, 360, "sat 02:00-06:00"),
    ("mon-fri 22:00-02:00", {0, 1, 2, 3, 4}, 1320, 120, "mon-fri 22:00-02:00"),
    ("fri-mon 01:00-03:00", {4, 5, 6, 0}, 60, 180, "fri-mon 01:00-03:00"),
    ("sat,sun 00:00-24:00", {5, 6}, 0, 1440, "sat,sun 00:00-24:00"),
    ("daily 03:30-04:00", set(range(7)), 210, 240, "daily 03:30-04:00"),
    ("* 03:30-04:00", set(range(7)), 210, 240, "daily 03:30-04:00"),
    ("mon,wed,fri 23:00-01:00", {0, 2, 4}, 1380, 60, "mon,wed,fri 23:00-01:00"),
    ("sun,mon-tue 01:00-02:00", {6, 0, 1}, 60, 120, "sun-tue 01:00-02:00"),
])
def test_windows_parse_to_days_and_minutes_with_a_canonical_text(
        text: str, days: set[int], start: int, end: int, canonical: str) -> None:
    w = parse_window(text)
    assert (w.days, w.start, w.end, w.to_text()) == (frozenset(days), start, end, canonical)
    assert parse_window(w.to_text()) == w


@pytest.mark.parametrize(("text", "message"), [
    ("sat 25:00-06:00", "--window 'sat 25:00-06:00': hour 25 is not 00-24"),
    ("fri 02:00", "--window 'fri 02:00': expected DAYS HH:MM-HH:MM"),
    ("sat 02:00-02:00", "--window 'sat 02:00-02:00': it starts and ends at 02:00"),
    ("sat 02:60-03:00", "--window 'sat 02:60-03:00': minute 60 is not 00-59"),
    ("sat 02:00-24:30", "--window 'sat 02:00-24:30': 24:30 is past 24:00"),
    ("sat 24:00-02:00", "--window 'sat 24:00-02:00': a window cannot start at 24:00"),
    ("sunday-xyz 02:00-03:00", "--window 'sunday-xyz 02:00-03:00': 'xyz' is not a day"),
    ("sat 2am-3am", "--window 'sat 2am-3am': '2am' is not a time HH:MM"),
    ("sat 02:00-03:00 extra", "--window 'sat 02:00-03:00 extra': expected DAYS HH:MM-HH:MM"),
    ("", "--window '': expected DAYS HH:MM-HH:MM"),
])
def test_bad_windows_are_refused_in_one_line_naming_the_part(text: str, message: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        parse_window(text)
    assert caught.value.message.startswith(message)
    assert "\n" not in caught.value.message
    assert caught.value.exit_code == 2


_days = st.frozensets(st.integers(0, 6), min_size=1)
_minute = st.integers(0, 1439)


@given(days=_days, start=_minute, end=st.integers(1, 1440))
def test_every_window_reads_back_from_its_text(days: frozenset[int], start: int, end: int) -> None:
    if start == end:
        return
    w = window(days, start, end)
    assert parse_window(w.to_text()) == w


def test_the_berlin_sunday_window_is_three_hours_on_spring_forward_and_five_on_fall_back() -> None:
    w = [parse_window("sun 02:00-06:00")]
    spring = next_window(w, BERLIN, utc(2026, 3, 28, 12))
    assert spring == Occurrence(utc(2026, 3, 29, 1), utc(2026, 3, 29, 4))  # 03:00 CEST (02:00 is skipped)
    autumn = next_window(w, BERLIN, utc(2026, 10, 24, 12))
    assert autumn == Occurrence(utc(2026, 10, 25, 0), utc(2026, 10, 25, 5))  # the first 02:00 (CEST)
    assert (spring.end - spring.start, autumn.end - autumn.start) == (timedelta(hours=3), timedelta(hours=5))
    ordinary = next_window(w, BERLIN, utc(2026, 4, 1))
    assert ordinary is not None and ordinary.end - ordinary.start == timedelta(hours=4)


def test_a_wall_time_in_the_gap_moves_to_the_transition_and_an_ambiguous_one_is_taken_first() -> None:
    assert wall_to_utc(date(2026, 3, 29), 2 * 60 + 30, BERLIN) == utc(2026, 3, 29, 1)
    assert wall_to_utc(date(2026, 10, 25), 2 * 60 + 30, BERLIN) == utc(2026, 10, 25, 0, 30)
    assert wall_to_utc(date(2026, 7, 1), 2 * 60 + 30, BERLIN) == utc(2026, 7, 1, 0, 30)


def test_a_window_entirely_inside_the_gap_does_not_open_that_day() -> None:
    w = [parse_window("sun 02:10-02:50")]
    assert window_at(w, BERLIN, utc(2026, 3, 29, 1)) is None
    assert next_window(w, BERLIN, utc(2026, 3, 28)) == Occurrence(utc(2026, 4, 5, 0, 10), utc(2026, 4, 5, 0, 50))


def test_a_midnight_crossing_window_is_open_after_midnight_on_the_next_day() -> None:
    w = [parse_window("fri 22:00-02:00")]
    friday_night = Occurrence(utc(2026, 12, 4, 21), utc(2026, 12, 5, 1))  # 22:00 CET to 02:00 CET on Saturday
    assert window_at(w, BERLIN, utc(2026, 12, 5, 0, 30)) == friday_night  # Saturday 01:30 in Berlin
    assert window_at(w, BERLIN, utc(2026, 12, 5, 1)) is None  # the end is not in it
    assert window_at(w, BERLIN, utc(2026, 12, 4, 20, 59)) is None
    assert next_window(w, BERLIN, utc(2026, 12, 4, 12)) == friday_night
    assert next_window(w, BERLIN, utc(2026, 12, 5, 0, 30)) == Occurrence(utc(2026, 12, 11, 21), utc(2026, 12, 12, 1))


def test_a_midnight_crossing_window_over_a_dst_change_is_an_hour_shorter_or_longer() -> None:
    w = [parse_window("sat 22:00-04:00")]
    spring = next_window(w, BERLIN, utc(2026, 3, 28))
    assert spring == Occurrence(utc(2026, 3, 28, 21), utc(2026, 3, 29, 2))  # 22:00 CET to 04:00 CEST: 5 hours
    autumn = next_window(w, BERLIN, utc(2026, 10, 24))
    assert autumn == Occurrence(utc(2026, 10, 24, 20), utc(2026, 10, 25, 3))  # 22:00 CEST to 04:00 CET: 7 hours
    assert window_at(w, BERLIN, utc(2026, 10, 25, 2, 30)) == autumn  # 03:30 CET, the morning after
    assert Occurrence(utc(2026, 10, 24, 20), utc(2026, 10, 25, 3)).to_dict() == {
        "start": "2026-10-24T20:00:00+00:00", "end": "2026-10-25T03:00:00+00:00"}


def test_a_window_ending_at_24_00_ends_at_the_next_midnight() -> None:
    w = [parse_window("sat 20:00-24:00")]
    assert window_at(w, ZoneInfo("UTC"), utc(2026, 12, 5, 23, 59)) == Occurrence(utc(2026, 12, 5, 20),
                                                                                 utc(2026, 12, 6))


def test_windows_that_touch_or_overlap_are_one_stretch() -> None:
    w = [parse_window("sat 22:00-24:00"), parse_window("sun 00:00-06:00"), parse_window("sun 05:00-07:00")]
    assert window_at(w, ZoneInfo("UTC"), utc(2026, 12, 5, 23)) == Occurrence(utc(2026, 12, 5, 22),
                                                                              utc(2026, 12, 6, 7))


def test_new_york_windows_follow_its_own_dst_dates() -> None:
    new_york = ZoneInfo("America/New_York")
    w = [parse_window("sun 01:00-05:00")]
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT; 2026-11-01: 02:00 EDT falls back to 01:00 EST
    assert next_window(w, new_york, utc(2026, 3, 7)) == Occurrence(utc(2026, 3, 8, 6), utc(2026, 3, 8, 9))
    assert next_window(w, new_york, utc(2026, 10, 31)) == Occurrence(utc(2026, 11, 1, 5), utc(2026, 11, 1, 10))


def test_no_windows_means_never_open() -> None:
    assert window_at([], BERLIN, utc(2026, 12, 5)) is None
    assert next_window([], BERLIN, utc(2026, 12, 5)) is None


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_at([parse_window("daily 00:00-24:00")], BERLIN, datetime(2026, 12, 5))


_zones = st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"])
_instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC, microsecond=0))


@given(days=_days, start=_minute, end=st.integers(1, 1440), zone=_zones, now=_instants)
def test_now_is_in_the_window_at_now_and_the_next_window_opens_after_it(
        days: frozenset[int], start: int, end: int, zone: str, now: datetime) -> None:
    if start == end:
        return
    tz = ZoneInfo(zone)
    windows = [window(days, start, end)]
    current = window_at(windows, tz, now)
    upcoming = next_window(windows, tz, now)
    assert windows_around(windows, tz, now) == (current, upcoming)  # the tick's one reckoning of both
    if current is not None:
        assert current.start <= now < current.end
    if upcoming is None:  # open all week (daily 00:00-24:00): the stretch runs past the horizon
        assert current is not None and current.end - now >= timedelta(days=7)
        return
    assert now < upcoming.start <= now + timedelta(days=8)
    assert window_at(windows, tz, upcoming.start) == upcoming
    assert upcoming.start.astimezone(tz).weekday() in days  # it opens on a listed day of the zone
    just_before = upcoming.start - timedelta(seconds=1)
    if just_before > now:  # closed just before it opens: it is a stretch of its own, the earliest after now
        assert window_at(windows, tz, just_before) in (None, current)
        assert current is None or current.end <= just_before
