"""The soak kind of `upgrader rollback CLUSTER` (no --to while the last upgrade run soaks), and the points of
no return every rollback preview shows.

A soaking run (two-step step one done, not finalized) goes back by a binary and manifest swap
(domain/rollback_soak.py): no etcd restore, nothing lost. Its files come from the snapshot the run took
before the hop (the captured manifests and package builds, sha256-checked as they are read). The etcd
members are read when the rollback is previewed and must be the same ones afterwards: no restore
happened. When it succeeds the soaking run is recorded ``rolled_back`` and both runs name each other.

After ``finalize`` the point of no return has passed: a rollback is the etcd-restore kind again and its
preview names each point passed since the snapshot (what, in which run and step, when).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from upgrader.domain.plans import plan_from_dict
from upgrader.domain.records import ClusterRecord, RunRecord, SnapshotRecord
from upgrader.domain.rollback import is_rollback
from upgrader.domain.rollback_soak import WHY_NOTHING_LOST
from upgrader.domain.runs import StepStatus
from upgrader.engine.context import RollbackHooks
from upgrader.engine.rollback import aside_dir
from upgrader.errors import UpgraderError
from upgrader.services import rollback_target
from upgrader.services.etcd_access import EtcdSession, etcd_session
from upgrader.services.wiring import AppContext


def no_loss(snapshot: SnapshotRecord, soak: Mapping[str, Any]) -> dict[str, Any]:
    """The loss list of a soak rollback: empty, and why."""
    return {"objects": [], "counts": {}, "revisions_since": 0, "seconds_since": 0, "snapshot_id": snapshot.id,
            "why_empty": WHY_NOTHING_LOST + f" (soaking since {soak.get('started')}, emulating {soak.get('emulated')})"}


def member_ids(app: AppContext, cluster: ClusterRecord, inventory: Mapping[str, Any]) -> list[str]:
    """The live etcd's member ids (a restore would give every member a new one); [] when it cannot be asked."""
    try:
        with etcd_session(app, cluster, inventory) as session:
            return sorted(m.id for m in session.members())
    except UpgraderError:
        return []


def points_passed(app: AppContext, cluster: str, snapshot: SnapshotRecord) -> list[dict[str, Any]]:
    """The points of no return the cluster's upgrade runs passed since ``snapshot``: each finished step of
    a run started at or after it (or of the run that took it) that its plan marks as one."""
    found: list[dict[str, Any]] = []
    with app.unit_of_work() as uow:
        for run in uow.repo.list_runs(cluster):
            document = uow.repo.get_plan(run.plan_id).document
            if is_rollback(document) or not _since(run, snapshot):
                continue
            done = {s.n: s for s in run.steps if s.status is StepStatus.SUCCEEDED}
            for point in plan_from_dict(dict(document)).points_of_no_return:
                step = done.get(point.step)
                if step is None:
                    continue
                found.append(point.to_dict() | {
                    "run_id": run.id, "at": step.finished_at.isoformat() if step.finished_at else None})
    return sorted(found, key=lambda p: (str(p.get("at")), p["run_id"], p["kind"]))


def _since(run: RunRecord, snapshot: SnapshotRecord) -> bool:
    if rollback_target.first_snapshot(run) == snapshot.id:
        return True
    return run.started_at is not None and run.started_at >= snapshot.created_at


def needs_snapshot(kind: str, snapshot: SnapshotRecord, passed: list[dict[str, Any]]) -> str | None:
    """Why the rollback restores the etcd snapshot (None: it does not)."""
    if kind == "soak":
        return None
    if not passed:
        return f"etcd is restored from snapshot {snapshot.id}; writes since it are lost"
    first = passed[0]
    return (f"the point of no return passed: {first['kind']} (run {first['run_id']} step {first['step']}, "
            f"{first.get('at')}); going back needs snapshot {snapshot.id} and loses every write since it")


def hooks(snapshot: SnapshotRecord, spec: Mapping[str, Any],
          session: Callable[[], EtcdSession | None]) -> RollbackHooks:
    """The soak rollback's hooks for the run driver (services.rollback._go): no snapshot file, no member
    to wait out, and its verification is that etcd's members are the ones the preview saw."""
    return RollbackHooks(snapshot_file=_no_file, artefacts=lambda node: rollback_target.artefacts(snapshot, node),
                         member_up=lambda name: True, verify_objects=lambda: same_members(session(), spec))


def failure(outcome: dict[str, Any], run_id: int) -> dict[str, Any]:
    """A failed soak rollback's outcome: where the replaced manifests are, and that etcd was not touched."""
    kept = {k: v for k, v in outcome.items() if k not in ("runbook", "runbooks")}  # no etcd restore to follow
    return kept | {
        "kept": {"manifests": f"{aside_dir(run_id)}/soak-manifests"}, "etcd": "not touched",
        "next": [f"fix the cause, then finish the soak rollback: upgrader resume {run_id}",
                 f"the manifests it replaced are kept under {aside_dir(run_id)}/soak-manifests; "
                 "etcd was not touched and nothing was deleted"]}


def _no_file() -> bytes:
    raise UpgraderError("a soak rollback restores no etcd snapshot")


def same_members(session: EtcdSession | None, spec: Mapping[str, Any]) -> tuple[bool, str]:
    """No etcd restore happened: the members are those the preview saw (a restore makes new ids)."""
    before = sorted(spec.get("etcd_member_ids") or [])
    if session is None:
        return False, "etcd could not be asked for its members"
    try:
        now = sorted(m.id for m in session.members())
    except UpgraderError as e:
        return False, f"etcd did not list its members: {e.message}"
    if before and now != before:
        return False, f"etcd members changed from {', '.join(before)} to {', '.join(now)}"
    return True, (f"no etcd restore: members {', '.join(now)} unchanged; every object written during the soak "
                  "is kept")
