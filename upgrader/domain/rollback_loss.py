"""What a rollback to a snapshot loses: the rule comparing two keyspaces (keys and mod revisions only).

Two listings, each ``key -> mod_revision``: the snapshot's (restored into a scratch etcd) and the
live cluster's. A key in both with the same mod revision was not written since: nothing is lost.
Otherwise a rollback changes it:

- in both, mod revisions differ: the object **reverts** to its snapshot state (written since, or
  deleted and created again since);
- only live: it was created since and **vanishes**;
- only in the snapshot: it was deleted since and **reappears**.

Kinds that churn all the time (leases, events, masterleases, the compaction marker; see
:mod:`upgrader.domain.etcd_keys`) are not listed but counted per kind, so a report says how much it
left out. Values are never part of this: a Secret is named, never shown. Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from upgrader.domain.etcd_keys import COMPACTION_KEY, EXCLUDED, PREFIX, excluded_kind, parse_key


class Change(StrEnum):
    REVERTS = "reverts"  # exists at snapshot time, written since
    VANISHES = "vanishes"  # created since
    REAPPEARS = "reappears"  # deleted since


@dataclass(frozen=True, slots=True)
class LostObject:
    resource: str  # "configmaps", "deployments.apps" (group-qualified when not core)
    namespace: str | None
    name: str
    change: str  # a Change value
    key: str = ""  # the etcd key itself

    def to_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "namespace": self.namespace, "name": self.name, "change": self.change}


@dataclass(frozen=True, slots=True)
class KeyDiff:
    """The comparison: what is lost, and how many churning keys differed per excluded kind."""

    objects: tuple[LostObject, ...]
    excluded: tuple[tuple[str, int], ...]  # (kind, keys that differ), sorted by kind
    keys_compared: int  # distinct keys of both sides, excluded kinds included


def change_of(snapshot_rev: int | None, live_rev: int | None) -> Change | None:
    """The rule for one key: its mod revision in the snapshot and live (None: absent there)."""
    if snapshot_rev is None and live_rev is None:
        return None
    if snapshot_rev is None:
        return Change.VANISHES
    if live_rev is None:
        return Change.REAPPEARS
    return None if snapshot_rev == live_rev else Change.REVERTS


def compare(snapshot: Mapping[str, int], live: Mapping[str, int], *, prefix: str = PREFIX) -> KeyDiff:
    """Every key a rollback from ``live`` to ``snapshot`` changes, in (resource, namespace, name) order."""
    lost: list[LostObject] = []
    excluded: Counter[str] = Counter()
    keys = snapshot.keys() | live.keys()
    for key in keys:
        change = change_of(snapshot.get(key), live.get(key))
        if change is None:
            continue
        kind = excluded_kind(key, prefix=prefix)
        if kind is not None:
            excluded[kind] += 1
            continue
        ref = parse_key(key, prefix=prefix)
        lost.append(LostObject(ref.resource, ref.namespace, ref.name, str(change), key))
    lost.sort(key=lambda o: (o.resource, o.namespace or "", o.name, o.change, o.key))
    return KeyDiff(tuple(lost), tuple(sorted(excluded.items())), len(keys))


@dataclass(frozen=True, slots=True)
class LossReport:
    snapshot_id: int
    snapshot_revision: int
    live_revision: int
    revisions_since: int
    snapshot_taken_at: datetime
    seconds_since: float
    objects: tuple[LostObject, ...]
    keys_compared: int
    excluded: tuple[tuple[str, int], ...] = ()  # churning kinds left out: (kind, keys that differ)

    def counts(self) -> dict[str, int]:
        found = Counter(o.change for o in self.objects)
        return {c.value: found.get(c.value, 0) for c in Change}

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot_id, "snapshot_revision": self.snapshot_revision,
            "live_revision": self.live_revision, "revisions_since": self.revisions_since,
            "snapshot_taken_at": self.snapshot_taken_at.isoformat(), "seconds_since": round(self.seconds_since, 3),
            "keys_compared": self.keys_compared, "counts": self.counts(),
            "objects": [o.to_dict() for o in self.objects],
            "excluded": {"kinds": {**dict.fromkeys((*EXCLUDED, COMPACTION_KEY), 0), **dict(self.excluded)},
                         "why": "leases, events, masterleases and the compaction marker change every few seconds; "
                                "counted (keys that differ), not listed"},
        }


def not_restored(before: tuple[LostObject, ...], live: Mapping[str, int]) -> tuple[tuple[LostObject, str], ...]:
    """After a rollback, the objects of the loss list shown before it that are not as the snapshot had them:
    one that was to vanish still exists, one that was to reappear or revert is missing. (A controller may
    create some objects again after a restore, pods for instance: the caller decides what matters.)"""
    wrong: list[tuple[LostObject, str]] = []
    for lost in before:
        present = lost.key in live
        if lost.change == Change.VANISHES and present:
            wrong.append((lost, "still exists"))
        elif lost.change in (Change.REAPPEARS, Change.REVERTS) and not present:
            wrong.append((lost, "missing"))
    return tuple(wrong)
