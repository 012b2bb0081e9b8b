"""Snapshot retention (upgrader.domain.snapshots): examples, then properties over any set of snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upgrader.domain.snapshots import (
    Candidate,
    RetentionPolicy,
    decide,
    kubeadm_backups_to_remove,
    newest_first,
)

T0 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # a Monday, late in the (UTC) day


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_keep_last_keeps_the_newest_n() -> None:
    snaps = [Candidate(i, at(i)) for i in range(1, 6)]
    decision = decide(snaps, RetentionPolicy(keep_last=2))
    assert set(decision.keep) == {4, 5}
    assert decision.delete == (1, 2, 3)  # oldest first


def test_keep_daily_keeps_the_newest_of_each_utc_day_with_snapshots() -> None:
    # 23:00 and 23:30 on Nov 30; 00:30 and 05:00 on Dec 1; nothing on Dec 2; 12:00 on Dec 3
    snaps = [Candidate(1, at(0)), Candidate(2, at(0.5)), Candidate(3, at(1.5)), Candidate(4, at(6)),
             Candidate(5, at(61))]
    assert set(decide(snaps, RetentionPolicy(keep_daily=2)).keep) == {5, 4}
    assert set(decide(snaps, RetentionPolicy(keep_daily=3)).keep) == {5, 4, 2}


def test_keep_daily_counts_days_in_utc_whatever_the_offset_given() -> None:
    # 2026-12-01 01:00+02:00 is 2026-11-30 23:00 UTC: the same UTC day as candidate 1, so one day only
    plus_two = datetime(2026, 12, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    snaps = [Candidate(1, at(-1)), Candidate(2, plus_two)]
    assert set(decide(snaps, RetentionPolicy(keep_daily=2)).keep) == {2}


def test_keep_weekly_uses_iso_weeks() -> None:
    sunday = datetime(2026, 11, 29, 12, tzinfo=UTC)  # ISO week 48
    monday = datetime(2026, 11, 30, 12, tzinfo=UTC)  # ISO week 49
    later_monday = monday + timedelta(hours=5)
    snaps = [Candidate(1, sunday), Candidate(2, monday), Candidate(3, later_monday)]
    assert set(decide(snaps, RetentionPolicy(keep_weekly=2)).keep) == {1, 3}
    assert set(decide(snaps, RetentionPolicy(keep_weekly=1)).keep) == {3}


def test_protected_snapshots_survive_an_aggressive_policy() -> None:
    snaps = [Candidate(1, at(0), known_good=True), Candidate(2, at(1), known_good=True),
             Candidate(3, at(2), pinned=True), Candidate(4, at(3), in_use=True), Candidate(5, at(4)),
             Candidate(6, at(5))]
    decision = decide(snaps, RetentionPolicy(keep_last=1))
    assert decision.keep == {6: ("last",), 2: ("newest-known-good",), 3: ("pinned",), 4: ("in-use",)}
    assert decision.delete == (1, 5)  # an older known-good snapshot is not protected


def test_ties_in_time_are_broken_by_id() -> None:
    snaps = [Candidate(7, at(0)), Candidate(3, at(0)), Candidate(5, at(0))]
    assert [c.id for c in newest_first(snaps)] == [7, 5, 3]
    assert set(decide(snaps, RetentionPolicy(keep_last=1)).keep) == {7}


@pytest.mark.parametrize("bad", [{"keep_last": -1}, {"keep_daily": 100_001}])
def test_counts_are_bounded(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RetentionPolicy(**bad)


def test_an_empty_policy_is_marked_empty() -> None:
    assert RetentionPolicy().empty and not RetentionPolicy(keep_weekly=1).empty


# --- properties ----------------------------------------------------------------------------

candidates = st.lists(
    st.builds(Candidate, id=st.integers(1, 10_000),
              created_at=st.integers(0, 24 * 120).map(lambda h: T0 + timedelta(hours=h, minutes=h % 7)),
              known_good=st.booleans(), pinned=st.sampled_from([False, False, False, True]),
              in_use=st.sampled_from([False, False, False, True])),
    max_size=40, unique_by=lambda c: c.id,
)
policies = st.builds(RetentionPolicy, keep_last=st.integers(0, 10), keep_daily=st.integers(0, 10),
                     keep_weekly=st.integers(0, 6))


@settings(max_examples=300)
@given(candidates, policies)
def test_keep_and_delete_partition_the_snapshots(snaps: list[Candidate], policy: RetentionPolicy) -> None:
    decision = decide(snaps, policy)
    assert set(decision.keep).isdisjoint(decision.delete)
    assert set(decision.keep) | set(decision.delete) == {c.id for c in snaps}
    assert all(decision.keep.values())  # every kept snapshot says why


@settings(max_examples=300)
@given(candidates, policies)
def test_protected_snapshots_always_survive(snaps: list[Candidate], policy: RetentionPolicy) -> None:
    decision = decide(snaps, policy)
    protected = {c.id for c in snaps if c.pinned or c.in_use}
    good = [c for c in newest_first(snaps) if c.known_good]
    if good:
        protected.add(good[0].id)
    assert protected <= set(decision.keep)


@settings(max_examples=300)
@given(candidates, st.integers(0, 50))
def test_keep_last_alone_keeps_exactly_the_newest_n_and_the_protected(snaps: list[Candidate], n: int) -> None:
    plain = [Candidate(c.id, c.created_at) for c in snaps]  # nothing protected
    decision = decide(plain, RetentionPolicy(keep_last=n))
    assert set(decision.keep) == {c.id for c in newest_first(plain)[:n]}
    assert len(decision.keep) == min(n, len(plain))


@settings(max_examples=300)
@given(candidates, policies)
def test_pruning_twice_deletes_nothing_more(snaps: list[Candidate], policy: RetentionPolicy) -> None:
    first = decide(snaps, policy)
    survivors = [c for c in snaps if c.id in first.keep]
    second = decide(survivors, policy)
    assert second.delete == ()
    assert second.keep == first.keep


@settings(max_examples=300)
@given(candidates, policies)
def test_daily_and_weekly_keep_at_most_one_per_bucket(snaps: list[Candidate], policy: RetentionPolicy) -> None:
    plain = [Candidate(c.id, c.created_at) for c in snaps]
    decision = decide(plain, RetentionPolicy(keep_daily=policy.keep_daily))
    days = [c.created_at.date() for c in plain if c.id in decision.keep]
    assert len(days) == len(set(days)) == min(policy.keep_daily, len({c.created_at.date() for c in plain}))
    decision = decide(plain, RetentionPolicy(keep_weekly=policy.keep_weekly))
    weeks = [c.created_at.isocalendar()[:2] for c in plain if c.id in decision.keep]
    assert len(weeks) == len(set(weeks))


@settings(max_examples=200)
@given(candidates, policies, policies)
def test_a_larger_policy_keeps_a_superset(snaps: list[Candidate], a: RetentionPolicy, b: RetentionPolicy) -> None:
    bigger = RetentionPolicy(max(a.keep_last, b.keep_last), max(a.keep_daily, b.keep_daily),
                             max(a.keep_weekly, b.keep_weekly))
    assert set(decide(snaps, a).keep) <= set(decide(snaps, bigger).keep)


def test_kubeadm_backups_keep_the_newest_of_each_kind() -> None:
    names = ["kubeadm-backup-etcd-2026-11-30-10-00-00", "kubeadm-backup-etcd-2026-12-01-09-30-00",
             "kubeadm-backup-manifests-2026-11-30-10-00-00", "kubeadm-backup-manifests-2026-11-29-23-59-59",
             "kubeadm-backup-manifests-2026-12-01-09-30-00", "kubeadm-backup-etcd-notadate", "notes.txt"]
    assert kubeadm_backups_to_remove(names) == [
        "kubeadm-backup-etcd-2026-11-30-10-00-00", "kubeadm-backup-manifests-2026-11-29-23-59-59",
        "kubeadm-backup-manifests-2026-11-30-10-00-00"]
    assert kubeadm_backups_to_remove(["kubeadm-backup-etcd-2026-11-30-10-00-00"]) == []


@given(st.lists(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)), max_size=10,
                unique=True), st.sampled_from(["etcd", "manifests"]))
def test_kubeadm_backups_keep_exactly_the_newest(dates: list[datetime], kind: str) -> None:
    names = [f"kubeadm-backup-{kind}-{d:%Y-%m-%d-%H-%M-%S}" for d in dates]
    removed = kubeadm_backups_to_remove(names)
    kept = set(names) - set(removed)
    assert kept == ({max(names)} if names else set())
