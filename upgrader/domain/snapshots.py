"""Snapshot retention: which snapshots `upgrader snapshot prune` keeps, and why. Pure.

The rules follow restic's and borg's ``forget``, with every calendar boundary in UTC:

- ``keep_last`` N: the N newest snapshots.
- ``keep_daily`` D: for the D most recent UTC days *that have snapshots*, the newest of each day.
- ``keep_weekly`` W: for the W most recent ISO weeks (Monday to Sunday, UTC) that have snapshots,
  the newest of each week.

The rules are applied each on its own over all the snapshots, newest first (created_at, then id);
a snapshot kept by any rule is kept, with every reason that applies. Whatever the policy, three
kinds are never deleted: a pinned snapshot, one an unfinished run refers to, and the newest
known-good one (a rollback needs it). Because the rules count days and weeks that have snapshots
(not days before "now"), the result does not depend on when prune runs, and pruning what a prune
kept deletes nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

MAX_KEEP = 100_000  # a bound on each count: more is a typo, not a policy


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0

    def __post_init__(self) -> None:
        for name in ("keep_last", "keep_daily", "keep_weekly"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_KEEP:
                raise ValueError(f"{name} must be between 0 and {MAX_KEEP}, got {value}")

    @property
    def empty(self) -> bool:
        """A policy with no rule keeps only the protected snapshots: prune refuses it."""
        return self.keep_last == self.keep_daily == self.keep_weekly == 0


@dataclass(frozen=True, slots=True)
class Candidate:
    """What retention needs to know of one (not yet deleted) snapshot."""

    id: int
    created_at: datetime  # timezone-aware
    known_good: bool = False
    pinned: bool = False
    in_use: bool = False  # an unfinished run refers to it


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    keep: dict[int, tuple[str, ...]] = field(default_factory=dict)  # id -> reasons, e.g. ("last", "daily")
    delete: tuple[int, ...] = ()  # oldest first


def newest_first(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (c.created_at, c.id), reverse=True)


def _utc_day(c: Candidate) -> Hashable:
    return c.created_at.utctimetuple()[:3]


def _iso_week(c: Candidate) -> Hashable:
    year, week, _ = c.created_at.astimezone(UTC).isocalendar()
    return (year, week)


def _newest_per_bucket(ordered: Sequence[Candidate], bucket: Callable[[Candidate], Hashable], n: int) -> list[int]:
    kept: list[int] = []
    seen: set[Hashable] = set()
    for c in ordered:
        if len(seen) >= n:
            break
        key = bucket(c)
        if key not in seen:
            seen.add(key)
            kept.append(c.id)
    return kept


def decide(candidates: Iterable[Candidate], policy: RetentionPolicy) -> RetentionDecision:
    """Which snapshots the policy keeps (with why) and which it deletes."""
    ordered = newest_first(candidates)
    reasons: dict[int, list[str]] = {c.id: [] for c in ordered}
    for c in ordered[: policy.keep_last]:
        reasons[c.id].append("last")
    for i in _newest_per_bucket(ordered, _utc_day, policy.keep_daily):
        reasons[i].append("daily")
    for i in _newest_per_bucket(ordered, _iso_week, policy.keep_weekly):
        reasons[i].append("weekly")
    newest_good = next((c for c in ordered if c.known_good), None)
    if newest_good is not None:
        reasons[newest_good.id].append("newest-known-good")
    for c in ordered:
        if c.pinned:
            reasons[c.id].append("pinned")
        if c.in_use:
            reasons[c.id].append("in-use")
    keep = {i: tuple(r) for i, r in reasons.items() if r}
    delete = tuple(c.id for c in reversed(ordered) if c.id not in keep)
    return RetentionDecision(keep=keep, delete=delete)


def kubeadm_backups_to_remove(names: Iterable[str]) -> list[str]:
    """Of the entries of /etc/kubernetes/tmp, kubeadm's backups to remove: all but the newest of each
    kind. kubeadm's dates (``2006-01-02-15-04-05``) sort as text; anything else there is left alone."""
    by_kind: dict[str, list[str]] = {}
    for name in names:
        for kind in ("etcd", "manifests"):
            prefix = f"kubeadm-backup-{kind}-"
            if name.startswith(prefix) and _is_kubeadm_date(name[len(prefix):]):
                by_kind.setdefault(kind, []).append(name)
    remove: list[str] = []
    for found in by_kind.values():
        remove += sorted(found)[:-1]
    return sorted(remove)


def _is_kubeadm_date(text: str) -> bool:
    parts = text.split("-")
    return len(parts) == 6 and all(p.isascii() and p.isdigit() for p in parts) and len(parts[0]) == 4
