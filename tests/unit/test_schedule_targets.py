"""The channel's choice of target: tables of the rules and their reasons, and properties over listings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.catalog import Release
from upgrader.domain.schedule import Channel, Decision, SchedulePolicy, parse_window, pick_target
from upgrader.domain.versions import Minor, Version

NOW = datetime(2026, 12, 5, 2, tzinfo=UTC)
V = Version.parse
SAT = (parse_window("sat 02:00-06:00"),)
PATCH = SchedulePolicy(SAT)
MINOR = SchedulePolicy(SAT, channel=Channel.MINOR)


def pinned(target: str) -> SchedulePolicy:
    t = V(target) if target.count(".") == 2 else Minor.parse(target)
    return SchedulePolicy(SAT, channel=Channel.PINNED, target=t)


def released(*items: str, days_ago: float | None = 60) -> list[Release]:
    when = NOW - timedelta(days=days_ago) if days_ago is not None else None
    return [Release(V(v), when) for v in items]


LISTING = [*released("v1.31.4", "v1.31.5", "v1.32.0", "v1.32.1", "v1.33.0", "v1.33.4"),
           Release(V("v1.34.0"), NOW - timedelta(days=20)), Release(V("v1.34.2"), NOW - timedelta(days=3, hours=2))]


@pytest.mark.parametrize(("policy", "current", "skip", "expected"), [
    (PATCH, "v1.33.0", set(), Decision(V("v1.33.4"), "v1.33.4 is the newest patch of v1.33")),
    (PATCH, "v1.33.4", set(), Decision(None, "v1.33.4 is the newest patch of v1.33")),
    (PATCH, "v1.31.4", {"v1.31.5"}, Decision(None, "v1.31.5 is skipped (banned): nothing newer on v1.31")),
    (PATCH, "v1.32.0", {"v1.32.1"}, Decision(None, "v1.32.1 is skipped (banned): nothing newer on v1.32")),
    (PATCH, "v1.34.0", set(), Decision(V("v1.34.2"), "v1.34.2 is the newest patch of v1.34")),
    (MINOR, "v1.32.1", set(), Decision(V("v1.33.4"), "v1.33.4 is the newest patch of v1.33, out for 60 days")),
    (MINOR, "v1.33.0", set(),
     Decision(V("v1.33.4"), "v1.34.2 is 3 days old; waiting for 14d; v1.33.4 is the newest patch of v1.33")),
    (MINOR, "v1.33.0", {"v1.34.2"}, Decision(V("v1.34.0"), "v1.34.0 is the newest patch of v1.34, out for 20 days")),
    (MINOR, "v1.34.0", set(),
     Decision(V("v1.34.2"), "no release of v1.35 is listed; v1.34.2 is the newest patch of v1.34")),
    (MINOR, "v1.32.1", {"v1.33.0", "v1.33.4"},
     Decision(None, "v1.33.4 is skipped (banned): nothing else on v1.33; v1.32.1 is the newest patch of v1.32")),
    (pinned("v1.33"), "v1.31.4", set(), Decision(V("v1.33.4"), "v1.33.4 is the newest patch of the pinned v1.33")),
    (pinned("v1.33"), "v1.31.4", {"v1.33.4"},
     Decision(V("v1.33.0"), "v1.33.0 is the newest patch of the pinned v1.33")),
    (pinned("v1.33"), "v1.33.4", set(), Decision(None, "at target v1.33 (v1.33.4)")),
    (pinned("v1.33"), "v1.34.0", set(), Decision(None, "v1.34.0 is already past the pinned target v1.33")),
    (pinned("v1.33.0"), "v1.31.4", set(), Decision(V("v1.33.0"), "v1.33.0 is the pinned target")),
    (pinned("v1.33.0"), "v1.33.0", set(), Decision(None, "at target v1.33.0")),
    (pinned("v1.33.0"), "v1.31.4", {"v1.33.0"}, Decision(None, "the pinned target v1.33.0 is skipped (banned)")),
    (pinned("v1.33.2"), "v1.31.4", set(), Decision(None, "the pinned target v1.33.2 is not in the release listing")),
    (pinned("v1.35"), "v1.31.4", set(), Decision(None, "pinned to v1.35: no release of v1.35 is listed")),
])
def test_the_channel_rules_and_their_reasons(policy: SchedulePolicy, current: str, skip: set[str],
                                             expected: Decision) -> None:
    skipped = frozenset(V(v) for v in skip)
    decision = pick_target(policy, V(current), LISTING, skipped, NOW, skip_reasons=dict.fromkeys(skipped, "banned"))
    assert decision == expected


def test_a_release_without_a_date_waits_and_says_so() -> None:
    listing = released("v1.33.4") + released("v1.34.1", days_ago=None)
    assert pick_target(MINOR, V("v1.33.4"), listing, frozenset(), NOW) == Decision(
        None, "v1.34.1 has no known release date; waiting for 14d; v1.33.4 is the newest patch of v1.33")


def test_the_minor_channel_takes_the_next_minor_once_it_is_old_enough() -> None:
    listing = [*released("v1.33.4"), Release(V("v1.34.2"), NOW - timedelta(days=14))]
    assert pick_target(MINOR, V("v1.33.4"), listing, frozenset(), NOW).target == V("v1.34.2")
    young = SchedulePolicy(SAT, channel=Channel.MINOR, min_release_age=15 * 86400.0)
    assert pick_target(young, V("v1.33.4"), listing, frozenset(), NOW).reason.startswith(
        "v1.34.2 is 14 days old; waiting for 15d")
    eager = SchedulePolicy(SAT, channel=Channel.MINOR, min_release_age=0.0)
    assert pick_target(eager, V("v1.33.4"), listing, frozenset(), NOW).target == V("v1.34.2")


def test_a_skip_without_a_reason_is_said_plainly() -> None:
    decision = pick_target(PATCH, V("v1.31.4"), LISTING, frozenset({V("v1.31.5")}), NOW)
    assert decision == Decision(None, "v1.31.5 is skipped: nothing newer on v1.31")


_versions = st.builds(Version, st.just(1), st.integers(28, 34), st.integers(0, 6))
_releases = st.lists(st.builds(Release, _versions, st.one_of(
    st.none(), st.integers(0, 90 * 24).map(lambda h: NOW - timedelta(hours=h)))), max_size=30)


@st.composite
def _policies(draw: st.DrawFn) -> SchedulePolicy:
    channel = draw(st.sampled_from(Channel))
    target = None
    if channel is Channel.PINNED:
        target = draw(st.one_of(_versions, st.builds(Minor, st.just(1), st.integers(28, 35))))
    return SchedulePolicy(SAT, channel=channel, target=target,
                          min_release_age=float(draw(st.integers(0, 60)) * 86400))


@given(policy=_policies(), current=_versions, releases=_releases, skip=st.frozensets(_versions, max_size=8))
def test_the_target_is_never_skipped_never_behind_and_moves_as_the_channel_allows(
        policy: SchedulePolicy, current: Version, releases: list[Release], skip: frozenset[Version]) -> None:
    decision = pick_target(policy, current, releases, skip, NOW)
    assert decision.reason and "\n" not in decision.reason
    if decision.target is None:
        return
    assert decision.target not in skip
    assert decision.target > current
    assert decision.target in {r.version for r in releases}
    if policy.channel is Channel.PATCH:
        assert decision.target.line == current.line
    if policy.channel is Channel.MINOR:
        assert decision.target.line.minus(current.line) in (0, 1)
        if decision.target.line != current.line:  # a new minor only once its release is old enough
            when = next(r.released for r in releases if r.version == decision.target and r.released)
            assert (NOW - when).total_seconds() >= policy.min_release_age
    if policy.channel is Channel.PINNED:
        assert policy.target is not None
        assert decision.target == policy.target or (
            isinstance(policy.target, Minor) and decision.target.line == policy.target)


@given(current=_versions, releases=_releases, skip=st.frozensets(_versions, max_size=8))
def test_the_patch_channel_takes_the_newest_allowed_patch_of_the_minor(
        current: Version, releases: list[Release], skip: frozenset[Version]) -> None:
    allowed = [r.version for r in releases if r.version.line == current.line and r.version not in skip]
    expected = max(allowed) if allowed and max(allowed) > current else None
    assert pick_target(PATCH, current, releases, skip, NOW).target == expected


def test_a_decision_prints_as_json_and_a_naive_clock_is_refused() -> None:
    assert Decision(V("v1.33.4"), "why").to_dict() == {"target": "v1.33.4", "reason": "why"}
    assert Decision(None, "why").to_dict() == {"target": None, "reason": "why"}
    with pytest.raises(ValueError, match="aware"):
        pick_target(PATCH, V("v1.33.0"), LISTING, frozenset(), datetime(2026, 12, 5))


def test_a_rolled_back_target_holds_back_the_older_patches_of_its_minor_but_not_a_newer_fix() -> None:
    from upgrader.domain.schedule import held_back

    releases = [Release(Version.parse(v)) for v in ("v1.32.9", "v1.33.1", "v1.33.2", "v1.33.3", "v1.33.4")]
    held = held_back({Version.parse("v1.33.3"): "run 7 was rolled back"}, releases)
    assert held == {Version.parse("v1.33.3"): "run 7 was rolled back",
                    Version.parse("v1.33.2"): "older than v1.33.3, where run 7 was rolled back",
                    Version.parse("v1.33.1"): "older than v1.33.3, where run 7 was rolled back"}
    assert held_back({}, releases) == {}
