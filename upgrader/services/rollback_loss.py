"""What a rollback to a snapshot loses, and a rehearsal of its restore that touches no cluster.

loss_since restores the snapshot file into a scratch etcd beside the orchestrator (this host's etcd
tools and server, a private temp dir removed afterwards, the process stopped by pid), lists its
keys with their mod revisions, lists the live cluster's the same way through the cluster's etcd
session, and compares them (upgrader.domain.rollback_loss): each object that reverts, vanishes or
reappears, by resource, namespace and name. Only keys are read, never values: a Secret is named,
never shown. Churning kinds (leases, events, masterleases, the compaction marker) are counted, not
listed.

rehearse verifies the snapshot first (services.snapshot_checks: sha256, the etcd tool's status hash
and revision, artefacts, same etcd members; IntegrityError, exit 8, before any restore), restores it
into the scratch etcd and checks there:

- revision: the restored etcd's revision is the recorded one (plus the bump, when the tool applied
  ``--bump-revision``);
- hash: the file's status hash was re-read with the same tool and equals the recorded one; the
  restored key space's ``hashkv`` is recorded for comparison after a real restore;
- keys: the restored etcd holds no more keys than the recorded status counted (``totalKey`` counts
  every revision of every key and etcd's own entries, so it is an upper bound, never an equality).

Then the loss list, and an event "rollback-rehearsed" with the snapshot id and what was checked. A
failed check is recorded too (``ok: false``) and raised as IntegrityError (exit 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from upgrader.domain.names import validate_name
from upgrader.domain.records import ClusterRecord, SnapshotRecord
from upgrader.domain.rollback_loss import Change, LossReport, LostObject, compare, not_restored
from upgrader.errors import IntegrityError
from upgrader.ports import KeyListing
from upgrader.services.audit import record_event
from upgrader.services.etcd_access import etcd_session
from upgrader.services.snapshot_checks import verify_snapshot
from upgrader.services.wiring import AppContext

__all__ = ["Change", "LossReport", "LostObject", "ObjectsMatch", "RehearsalCheck", "RehearsalResult", "loss_since",
           "objects_match", "rehearse"]


def loss_since(app: AppContext, cluster: ClusterRecord, snapshot: SnapshotRecord, *,
               inventory: Mapping[str, Any] | None = None) -> LossReport:
    """Every object a rollback of ``cluster`` to ``snapshot`` would revert, remove or bring back."""
    if snapshot.cluster != cluster.name:
        raise IntegrityError(f"snapshot {snapshot.id} is a snapshot of cluster {snapshot.cluster}, "
                             f"not of {cluster.name}: refused")
    with app.scratch_etcd(Path(snapshot.path), snapshot_etcd=_etcd_version(snapshot)) as scratch:
        restored = scratch.keys()
    return _loss(app, cluster, snapshot, restored, inventory=inventory)


def _loss(app: AppContext, cluster: ClusterRecord, snapshot: SnapshotRecord, restored: KeyListing, *,
          inventory: Mapping[str, Any] | None) -> LossReport:
    with etcd_session(app, cluster, inventory) as session:
        live = session.tool.keys(session.endpoints, session.tls)
    diff = compare(restored.keys, live.keys)
    revision = _recorded_revision(snapshot) or restored.revision
    taken = snapshot.created_at if snapshot.created_at.tzinfo else snapshot.created_at.replace(tzinfo=UTC)
    return LossReport(snapshot_id=int(snapshot.id), snapshot_revision=revision, live_revision=live.revision,
                      revisions_since=live.revision - revision, snapshot_taken_at=taken,
                      seconds_since=max(0.0, (_now(app) - taken).total_seconds()), objects=diff.objects,
                      keys_compared=diff.keys_compared, excluded=diff.excluded)


@dataclass(frozen=True, slots=True)
class ObjectsMatch:
    """After a rollback: the objects of the loss list that are not as the snapshot had them."""

    checked: int
    wrong: tuple[tuple[LostObject, str], ...]

    @property
    def ok(self) -> bool:
        return not self.wrong

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "ok": self.ok,
                "wrong": [{**o.to_dict(), "found": why} for o, why in self.wrong]}


def objects_match(app: AppContext, cluster: ClusterRecord, before: LossReport, *,
                  inventory: Mapping[str, Any] | None = None) -> ObjectsMatch:
    """The live cluster, after a rollback, against the loss list shown before it: what was to vanish is
    gone, what was to reappear or revert is there (keys only)."""
    with etcd_session(app, cluster, inventory) as session:
        live = session.tool.keys(session.endpoints, session.tls)
    return ObjectsMatch(checked=len(before.objects), wrong=not_restored(before.objects, live.keys))


@dataclass(frozen=True, slots=True)
class RehearsalCheck:
    name: str  # "integrity", "revision", "hash", "keys"
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class RehearsalResult:
    cluster: str
    snapshot_id: int
    checks: tuple[RehearsalCheck, ...]
    loss: LossReport | None  # None when a check failed (nothing is compared with a bad restore)
    restore_tool: str
    bumped_by: int
    hashkv: int | None  # the restored key space's hash at its revision
    restored_keys: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "snapshot": self.snapshot_id, "ok": self.ok,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
                "restore_tool": self.restore_tool, "bumped_by": self.bumped_by, "hashkv": self.hashkv,
                "restored_keys": self.restored_keys, "seconds": round(self.seconds, 3),
                "loss": self.loss.to_dict() if self.loss is not None else None}


def rehearse(app: AppContext, *, cluster: str, snapshot_id: int, run_id: int | None = None) -> RehearsalResult:
    """Restore ``snapshot_id`` into a scratch etcd, check it, list the loss, record "rollback-rehearsed"
    (on ``run_id``'s record too when a run rehearses before its hop)."""
    validate_name(cluster)
    verified = verify_snapshot(app, snapshot_id=snapshot_id, cluster=cluster)  # exit 8 before any restore
    record = verified.record
    with app.unit_of_work() as uow:
        cluster_record = uow.repo.get_cluster(cluster)
    started = app.clock.monotonic()
    checks = [RehearsalCheck("integrity", True, f"verified: {len(verified.checked)} checks, {verified.membership}")]
    with app.scratch_etcd(Path(record.path), snapshot_etcd=_etcd_version(record)) as scratch:
        restored = scratch.keys()
        hashkv = scratch.hashkv(restored.revision)
        restore_tool, bumped_by = scratch.restore_tool, scratch.bumped_by
    checks += [_revision_check(record, restored, bumped_by), _hash_check(verified.checked, hashkv),
               _keys_check(record, restored)]
    ok = all(c.ok for c in checks)
    loss = _loss(app, cluster_record, record, restored, inventory=None) if ok else None
    result = RehearsalResult(cluster=cluster, snapshot_id=int(record.id), checks=tuple(checks), loss=loss,
                             restore_tool=restore_tool, bumped_by=bumped_by, hashkv=hashkv,
                             restored_keys=len(restored.keys), seconds=app.clock.monotonic() - started)
    _record(app, result, run_id)
    if not ok:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
        raise IntegrityError(f"rehearsal of snapshot {record.id} failed: {failed}")
    return result


def _revision_check(record: SnapshotRecord, restored: KeyListing, bumped_by: int) -> RehearsalCheck:
    recorded = _recorded_revision(record)
    if recorded is None:
        return RehearsalCheck("revision", False, f"no revision recorded; the restored etcd is at {restored.revision}")
    expected = recorded + bumped_by
    bump = f" + bump {bumped_by}" if bumped_by else ""
    newest = max(restored.keys.values(), default=0)
    if newest > recorded:
        return RehearsalCheck("revision", False, f"the restored etcd holds a key written at revision {newest}, "
                                                 f"after the recorded {recorded}")
    if restored.revision != expected:
        return RehearsalCheck("revision", False, f"the restored etcd is at revision {restored.revision}, "
                                                 f"{recorded}{bump} was recorded")
    return RehearsalCheck("revision", True, f"restored at revision {restored.revision} ({recorded}{bump} recorded)")


def _hash_check(checked: tuple[str, ...], hashkv: int) -> RehearsalCheck:
    status = next((c for c in checked if c.startswith("etcd status hash")), None)
    if status is not None:
        return RehearsalCheck("hash", True, f"{status} as recorded (same tool); restored hashkv {hashkv}")
    fallback = next((c for c in checked if c.startswith("etcd trailer")), "status not re-read")
    return RehearsalCheck("hash", True, f"{fallback}; restored hashkv {hashkv}")


def _keys_check(record: SnapshotRecord, restored: KeyListing) -> RehearsalCheck:
    total = record.etcd_status.get("total_keys")
    count = len(restored.keys)
    if not isinstance(total, int):
        return RehearsalCheck("keys", True, f"{count} keys restored (no totalKey recorded)")
    if count > total:
        return RehearsalCheck("keys", False, f"{count} keys restored, more than the {total} entries recorded")
    return RehearsalCheck("keys", True, f"{count} keys restored, within the {total} entries the status counted "
                                        "(totalKey counts every revision and etcd's own entries)")


def _record(app: AppContext, result: RehearsalResult, run_id: int | None) -> None:
    data: dict[str, Any] = {"snapshot": result.snapshot_id, "ok": result.ok,
                            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
                            "restore_tool": result.restore_tool, "bumped_by": result.bumped_by,
                            "hashkv": result.hashkv, "restored_keys": result.restored_keys}
    if result.loss is not None:
        loss = result.loss
        data["loss"] = {"snapshot_revision": loss.snapshot_revision, "live_revision": loss.live_revision,
                        "revisions_since": loss.revisions_since, "seconds_since": round(loss.seconds_since, 3),
                        "counts": loss.counts(), "excluded": dict(loss.excluded)}
    with app.unit_of_work() as uow:
        record_event(app, uow, "rollback-rehearsed", cluster=result.cluster, run_id=run_id, data=data)
        uow.commit()


def _recorded_revision(snapshot: SnapshotRecord) -> int | None:
    value = snapshot.etcd_status.get("revision")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _etcd_version(snapshot: SnapshotRecord) -> str | None:
    value = snapshot.etcd_status.get("etcd_version")
    return value if isinstance(value, str) else None


def _now(app: AppContext) -> datetime:
    now = app.clock.now()
    return now if now.tzinfo else now.replace(tzinfo=UTC)
