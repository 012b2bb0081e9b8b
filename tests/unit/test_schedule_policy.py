"""Freezes, ages and the schedule policy value: parsing, validation, and its stored document."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.schedule import (
    Channel,
    Freeze,
    SchedulePolicy,
    format_age,
    frozen,
    notify_problem,
    parse_age,
    parse_channel,
    parse_freeze,
    parse_schedule_target,
    parse_window,
)
from upgrader.domain.schedule_windows import window
from upgrader.domain.versions import Minor, Version
from upgrader.errors import InvalidScheduleError

SAT = (parse_window("sat 02:00-06:00"),)


def test_a_freeze_is_whole_days_in_the_zone_both_ends_included() -> None:
    holidays = parse_freeze("2026-12-20..2027-01-05")
    assert holidays == Freeze(date(2026, 12, 20), date(2027, 1, 5))
    assert holidays.to_text() == "2026-12-20..2027-01-05"
    berlin = ZoneInfo("Europe/Berlin")
    assert frozen([holidays], berlin, datetime(2026, 12, 19, 23, 30, tzinfo=UTC)) == holidays  # 00:30 on the 20th
    assert frozen([holidays], berlin, datetime(2026, 12, 19, 22, 59, tzinfo=UTC)) is None
    assert frozen([holidays], berlin, datetime(2027, 1, 5, 22, 59, tzinfo=UTC)) == holidays  # 23:59 on the 5th
    assert frozen([holidays], berlin, datetime(2027, 1, 5, 23, 0, tzinfo=UTC)) is None
    assert parse_freeze("2026-12-24") == Freeze(date(2026, 12, 24), date(2026, 12, 24))


@pytest.mark.parametrize(("text", "message"), [
    ("2027-01-05..2026-12-20", "--freeze '2027-01-05..2026-12-20': it ends (2026-12-20) before it starts (2027-01-05)"),
    ("2026-13-01..2027-01-01", "--freeze '2026-13-01..2027-01-01': 2026-13-01 is not a date"),
    ("20261220..20270105", "--freeze '20261220..20270105': '20261220' is not a date YYYY-MM-DD"),
    ("2026-12-20..2027-01-05..2027-02-01", "--freeze '2026-12-20..2027-01-05..2027-02-01': expected FIRST..LAST"),
])
def test_bad_freezes_are_refused_naming_the_part(text: str, message: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        parse_freeze(text)
    assert caught.value.message.startswith(message)


@pytest.mark.parametrize(("text", "seconds"), [
    ("14d", 14 * 86400), ("36h", 36 * 3600), ("90m", 90 * 60), ("0", 0), ("2w", 14 * 86400), ("365d", 365 * 86400),
])
def test_ages_read_as_seconds(text: str, seconds: int) -> None:
    assert parse_age(text) == float(seconds)


@pytest.mark.parametrize("text", ["366d", "53w", "-1d", "1.5d", "14", "14 d", "d", "", "14y"])
def test_bad_ages_are_refused_naming_the_option(text: str) -> None:
    with pytest.raises(InvalidScheduleError, match=r"^--min-release-age '"):
        parse_age(text)


@given(st.integers(0, 365 * 24 * 60))
def test_every_age_in_minutes_reads_back_from_its_spelling(minutes: int) -> None:
    assert parse_age(format_age(minutes * 60.0)) == minutes * 60.0


def test_the_defaults_are_the_documented_ones() -> None:
    policy = SchedulePolicy(SAT)
    assert (policy.tz, policy.channel, policy.target, policy.min_release_age, policy.max_unavailable,
            policy.auto_rollback, policy.notify, policy.cert_horizon_days) == (
        "UTC", Channel.PATCH, None, 14 * 86400.0, 1, True, None, 30)


@pytest.mark.parametrize(("given", "message"), [
    ({"windows": ()}, "--window: at least one window is needed"),
    ({"channel": Channel.PINNED}, "--target: the pinned channel needs a target"),
    ({"target": Version(1, 33, 2)}, "--target: a target is only for the pinned channel"),
    ({"max_unavailable": 0}, "--max-unavailable: 0 is not a whole number from 1 to 10000"),
    ({"max_unavailable": 10001}, "--max-unavailable: 10001 is not a whole number from 1 to 10000"),
    ({"cert_horizon_days": 0}, "--cert-horizon-days: 0 is not a whole number from 1 to 365"),
    ({"min_release_age": 366 * 86400.0}, "--min-release-age: 31622400.0 is not 0 to 365 days in seconds"),
    ({"notify": "ftp://hooks.example/x"}, "--notify: 'ftp://hooks.example/x': only http and https URLs are allowed"),
    ({"notify": "https://hooks.example/a b"}, "--notify: 'https://hooks.example/a b': a URL has no spaces"),
    ({"notify": "https:///path"}, "--notify: 'https:///path': the URL has no host"),
    ({"notify": "https://hooks.example:99999/"}, "--notify: 'https://hooks.example:99999/': not a URL"),
    ({"notify": "https://h.example/" + "a" * 2048}, "--notify: 'https://h.example/aaaaaaaaa"),
    ({"tz": ""}, "--tz: '' is not a time zone name"),
])
def test_a_policy_refuses_bad_fields_naming_the_option(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        SchedulePolicy(**({"windows": SAT} | given))
    assert caught.value.message.startswith(message)


def test_notify_takes_http_and_https_urls_with_a_host() -> None:
    assert notify_problem("http://10.0.0.5:8080/hook") is None
    assert notify_problem("https://hooks.example/services/T0/B0/xyz?ok=1") is None
    assert notify_problem("https://h.example/" + "a" * 2030) is None  # 2048 characters: the most allowed
    assert notify_problem("https://h.example/" + "a" * 2031) == "longer than 2048 characters"
    assert notify_problem("javascript:alert(1)") == "only http and https URLs are allowed"


def test_with_changes_validates_again() -> None:
    policy = SchedulePolicy(SAT)
    assert policy.with_changes(max_unavailable=3).max_unavailable == 3
    with pytest.raises(InvalidScheduleError, match="--max-unavailable"):
        policy.with_changes(max_unavailable=0)


def test_the_stored_document_has_stable_json_keys_and_reads_back() -> None:
    policy = SchedulePolicy((parse_window("fri-mon 22:00-02:00"), parse_window("daily 03:00-04:00")),
                            tz="Europe/Berlin", channel=Channel.PINNED, target=Minor(1, 33),
                            freezes=(parse_freeze("2026-12-20..2027-01-05"),), max_unavailable=3,
                            auto_rollback=False, notify="https://hooks.example/t", cert_horizon_days=45,
                            min_release_age=0.0)
    doc = json.loads(json.dumps(policy.to_dict()))
    assert doc == {
        "windows": ["fri-mon 22:00-02:00", "daily 03:00-04:00"], "tz": "Europe/Berlin", "channel": "pinned",
        "target": "v1.33", "min_release_age": 0.0, "freezes": ["2026-12-20..2027-01-05"], "max_unavailable": 3,
        "auto_rollback": False, "notify": "https://hooks.example/t", "cert_horizon_days": 45,
    }
    assert SchedulePolicy.from_dict(doc) == policy
    assert SchedulePolicy.from_dict({"windows": ["sat 02:00-06:00"]}) == SchedulePolicy(SAT)


_OK = {"windows": ["sat 02:00-06:00"]}


@pytest.mark.parametrize(("doc", "message"), [
    ([], "schedule policy: expected a JSON object"),
    ({}, "schedule policy: field 'windows' is missing"),
    (_OK | {"colour": "red"}, "schedule policy: unknown field(s) colour"),
    ({"windows": "sat 02:00-06:00"}, "schedule policy field 'windows': expected a list"),
    ({"windows": ["sat 26:00-06:00"]}, "schedule policy field 'windows' 'sat 26:00-06:00': hour 26 is not 00-24"),
    (_OK | {"channel": "nightly"}, "schedule policy field 'channel': 'nightly' is not patch, minor or pinned"),
    (_OK | {"channel": "pinned", "target": "v1"}, "schedule policy field 'target': invalid version 'v1'"),
    (_OK | {"channel": "pinned", "target": 1.33}, "schedule policy field 'target': 1.33 is not a version"),
    (_OK | {"channel": "pinned"}, "schedule policy field 'target': the pinned channel needs a target"),
    (_OK | {"min_release_age": "forever"}, "schedule policy field 'min_release_age' 'forever': expected a whole"),
    (_OK | {"min_release_age": True}, "schedule policy field 'min_release_age': True is not 0 to 365 days"),
    (_OK | {"freezes": ["2027-01-05..2026-12-20"]}, "schedule policy field 'freezes' '2027-01-05..2026-12-20'"),
    (_OK | {"max_unavailable": "2"}, "schedule policy field 'max_unavailable': '2' is not a whole number"),
    (_OK | {"auto_rollback": "yes"}, "schedule policy field 'auto_rollback': 'yes' is not true or false"),
    (_OK | {"notify": "file:///etc/passwd"}, "schedule policy field 'notify': 'file:///etc/passwd': only http"),
    (_OK | {"cert_horizon_days": 1000}, "schedule policy field 'cert_horizon_days': 1000 is not a whole number"),
    (_OK | {"tz": None}, "schedule policy field 'tz': None is not a time zone name"),
])
def test_a_bad_stored_document_is_refused_naming_the_field(doc: Any, message: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        SchedulePolicy.from_dict(doc)
    assert caught.value.message.startswith(message)
    assert "\n" not in caught.value.message


def test_channel_and_target_parse_as_typed() -> None:
    assert parse_channel("Minor") is Channel.MINOR
    assert parse_schedule_target("v1.33") == Minor(1, 33)
    assert parse_schedule_target("1.33.2") == Version(1, 33, 2)
    with pytest.raises(InvalidScheduleError, match=r"^--channel: 'weekly' is not patch, minor or pinned"):
        parse_channel("weekly")
    with pytest.raises(InvalidScheduleError, match=r"^--target: invalid version 'latest'"):
        parse_schedule_target("latest")


_windows = st.builds(window, st.frozensets(st.integers(0, 6), min_size=1), st.integers(0, 1439),
                     st.integers(1, 1440)).filter(lambda w: w.start != w.end)
_freezes = st.builds(lambda a, n: Freeze(a, date.fromordinal(a.toordinal() + n)),
                     st.dates(date(2026, 1, 1), date(2030, 1, 1)), st.integers(0, 60))
_targets = st.one_of(st.builds(Minor, st.just(1), st.integers(20, 40)),
                     st.builds(Version, st.just(1), st.integers(20, 40), st.integers(0, 20)))


@st.composite
def _policies(draw: st.DrawFn) -> SchedulePolicy:
    channel = draw(st.sampled_from(Channel))
    return SchedulePolicy(
        windows=tuple(draw(st.lists(_windows, min_size=1, max_size=3))),
        tz=draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"])),
        channel=channel,
        target=draw(_targets) if channel is Channel.PINNED else None,
        min_release_age=float(draw(st.integers(0, 365 * 24)) * 3600),
        freezes=tuple(draw(st.lists(_freezes, max_size=3))),
        max_unavailable=draw(st.integers(1, 10000)),
        auto_rollback=draw(st.booleans()),
        notify=draw(st.sampled_from([None, "https://hooks.example/x", "http://10.1.2.3:9000/tick?c=prod"])),
        cert_horizon_days=draw(st.integers(1, 365)),
    )


@given(_policies())
def test_every_policy_reads_back_from_its_json_document(policy: SchedulePolicy) -> None:
    doc = json.loads(json.dumps(policy.to_dict()))
    assert list(doc) == ["windows", "tz", "channel", "target", "min_release_age", "freezes", "max_unavailable",
                         "auto_rollback", "notify", "cert_horizon_days"]
    assert SchedulePolicy.from_dict(doc) == policy
