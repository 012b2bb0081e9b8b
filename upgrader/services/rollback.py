"""`upgrader rollback CLUSTER`: back to a verified known-good snapshot, the cost shown before it happens.

preview (nothing changes): choose the snapshot (services.rollback_target), verify it (sha256, the etcd
tool's integrity check, same cluster: IntegrityError, exit 8), read what it must reinstate (exit 8 when
that cannot be done on these nodes), plan the rollback (domain.rollback) and name what it will lose
(the rollback-loss comparison: objects that revert, vanish or reappear).

run: the plan is recorded as a plan whose document says ``kind: rollback`` and run like an apply's
(services.apply's executor machinery, under the cluster's lease), linked to the run it rolls back;
``upgrader resume RUN`` finishes an interrupted one. When it succeeds, the rolled-back run (when it had
failed) is recorded ``rolled_back``. A failed rollback deletes nothing and says, node by node, what was
done and what was not, naming the restore-etcd-from-snapshot runbook.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from upgrader.domain.inventory import parse_inventory
from upgrader.domain.names import validate_name
from upgrader.domain.plans import plan_from_dict
from upgrader.domain.records import ClusterRecord, PlanRecord, RunRecord, SnapshotRecord
from upgrader.domain.rollback import RollbackKind, RollbackPlan, plan_rollback
from upgrader.domain.rollback_soak import plan_soak_rollback, touched
from upgrader.domain.runs import RunStatus, StepStatus
from upgrader.engine.context import ApplyOptions, RollbackHooks
from upgrader.engine.executor import StepFailedError
from upgrader.engine.rollback import aside_dir
from upgrader.errors import ClusterUnreachableError, IntegrityError, UpgraderError, UsageError
from upgrader.services import rollback_loss, rollback_soak, rollback_target
from upgrader.services.apply import DriveExtras, Report, RunResult, _drive, _lease
from upgrader.services.audit import record_event
from upgrader.services.etcd_access import EtcdSession, LazyEtcdSession
from upgrader.services.etcd_lineage import RESTORED, compare_members
from upgrader.services.finalize import soaking
from upgrader.services.run_options import run_options
from upgrader.services.run_outcome import restore_entry
from upgrader.services.snapshot_checks import VerifyResult, verify_snapshot
from upgrader.services.wiring import AppContext

STOP_GRACE = 15.0  # seconds a stopped control plane is given when its etcd cannot be asked (resume)


@dataclass(frozen=True, slots=True)
class RollbackPreview:
    cluster: str
    snapshot: SnapshotRecord
    verified: VerifyResult
    rollback: RollbackPlan
    inventory: Mapping[str, Any]
    loss: Mapping[str, Any] | None  # the LossReport's document; None when it could not be made
    loss_error: str | None
    passed: tuple[Mapping[str, Any], ...] = ()  # points of no return passed since the snapshot
    etcd_member_ids: tuple[str, ...] = ()  # a soak rollback's etcd members, the same ones after it

    @property
    def rollback_of(self) -> int | None:
        return self.rollback.rollback_of

    def to_dict(self) -> dict[str, Any]:
        s, plan = self.snapshot, self.rollback.plan
        kind = str(self.rollback.kind)
        return {
            "cluster": self.cluster,
            "kind": kind,
            "etcd_restore": kind != str(RollbackKind.SOAK),
            "needs_snapshot": rollback_soak.needs_snapshot(kind, s, [dict(p) for p in self.passed]),
            "points_of_no_return_passed": [dict(p) for p in self.passed],
            "nodes_touched": touched(self.rollback),
            "rollback_of": self.rollback_of,
            "current": dict(self.rollback.current),
            "target": {"version": str(plan.target), "kubelets": dict(self.rollback.target.kubelets),
                       "packages": {n: dict(p) for n, p in self.rollback.target.packages.items()},
                       "etcd_image": self.rollback.target.etcd_image},
            "snapshot": {"id": s.id, "created_at": s.created_at.isoformat(), "revision": s.etcd_status.get("revision"),
                         "known_good": s.known_good, "verified": True, "checked": list(self.verified.checked),
                         "membership": self.verified.membership},
            "control_planes": sorted({st.node for st in plan.steps if st.node and st.batch is None}),
            "workers_drained_and_downgraded": dict(self.rollback.workers),
            "loss": dict(self.loss) if self.loss is not None else None,
            "loss_error": self.loss_error,
            "steps": [st.to_dict() for st in plan.steps],
        }


def preview(app: AppContext, *, cluster: str, to: str | None = None, rollback_of: int | None = None,
            snapshot_id: int | None = None, wait_api: float = 0.0) -> RollbackPreview:
    """Everything shown before a rollback; nothing changes. ``snapshot_id`` (automatic rollback) wins over
    ``to``; ``rollback_of`` names the run rolled back when the caller knows it; ``wait_api``: seconds to
    wait for an API server that is restarting (kubeadm just put the old manifest back)."""
    validate_name(cluster)
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    if snapshot_id is not None:
        snapshot, last = rollback_target.choose(app, cluster, str(snapshot_id))
    else:
        snapshot, last = rollback_target.choose(app, cluster, to)
    if snapshot.cluster != cluster:
        raise IntegrityError(f"snapshot {snapshot.id} is a snapshot of cluster {snapshot.cluster}, not of "
                             f"{cluster}: refused")
    verified = verify_snapshot(app, snapshot_id=snapshot.id)  # sha256, the tool's check, the artefacts
    verified = replace(verified, membership=same_etcd(app, record, snapshot))
    target = rollback_target.target_of(snapshot)
    doc = _inventory(app, record, wait_api)
    inventory = parse_inventory(doc)
    linked = rollback_of if rollback_of is not None else (last.id if last is not None else None)
    token = f"upgrader-rollback-{secrets.token_hex(6)}"
    passed = tuple(rollback_soak.points_passed(app, cluster, snapshot))
    soak = soaking(last) if last is not None and to is None and snapshot_id is None else None
    if soak is not None:  # a two-step soak: binaries and manifests swapped back, no etcd restore, nothing lost
        plan = plan_soak_rollback(inventory, target, token=token, rollback_of=linked,
                                  fingerprint=inventory.fingerprint)
        members = tuple(rollback_soak.member_ids(app, record, doc))
        return RollbackPreview(cluster, snapshot, verified, plan, doc, rollback_soak.no_loss(snapshot, soak), None,
                               passed, members)
    plan = plan_rollback(inventory, target, token=token, rollback_of=linked, fingerprint=inventory.fingerprint)
    loss, why = _loss(app, record, snapshot, doc)
    return RollbackPreview(cluster, snapshot, verified, plan, doc, loss, why, passed)


def _inventory(app: AppContext, cluster: ClusterRecord, wait: float) -> dict[str, Any]:
    deadline = app.clock.monotonic() + wait
    while True:
        try:
            return app.cluster_api(cluster).observe_inventory()
        except ClusterUnreachableError:
            if app.clock.monotonic() >= deadline:
                raise
            app.clock.sleep(2.0)


def _loss(app: AppContext, cluster: ClusterRecord, snapshot: SnapshotRecord,
          inventory: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The loss list; None and why when it cannot be made (the scratch restore failed, etcd unreachable)."""
    try:
        return rollback_loss.loss_since(app, cluster, snapshot, inventory=inventory).to_dict(), None
    except UpgraderError as e:
        return None, e.message


def run(app: AppContext, previewed: RollbackPreview, *, options: ApplyOptions | None = None,
        report: Report = lambda e: None, stop: threading.Event | None = None) -> RunResult:
    """Take the cluster's lease and roll it back as previewed."""
    with _lease(app, previewed.cluster, run_id=None) as token:
        return run_under_lease(app, previewed, token=token, options=options, report=report, stop=stop)


def run_under_lease(app: AppContext, previewed: RollbackPreview, *, token: int, options: ApplyOptions | None = None,
                    report: Report = lambda e: None, stop: threading.Event | None = None) -> RunResult:
    """The rollback's plan and run, recorded and driven; for a caller that holds the lease (``token``)."""
    options = options or run_options(auto_rollback=False)
    document = previewed.rollback.to_dict()
    document["rollback"] |= {"inventory": dict(previewed.inventory), "loss_vanishes": _vanishing(previewed.loss),
                             "etcd_member_ids": list(previewed.etcd_member_ids)}
    plan = previewed.rollback.plan
    with app.unit_of_work() as uow:
        plan_id = uow.repo.save_plan(cluster=plan.cluster, observation=None, created_by=app.actor.user,
                                     target=str(plan.target), strategy=document["strategy"], skipped_versions=[],
                                     source_fingerprint=None, document=document, steps=document["steps"])
        started = uow.repo.create_run(plan_id=plan_id, started_by=app.actor.user, host=app.actor.host,
                                      command_line=app.actor.command_line, token=token, options=options.to_dict(),
                                      rollback_of=previewed.rollback_of)
        record_event(app, uow, "rollback-started", cluster=plan.cluster, run_id=started.id,
                     data={"plan": plan_id, "snapshot": previewed.snapshot.id, "rollback_of": previewed.rollback_of,
                           "target": str(plan.target)})
        uow.commit()
        cluster = uow.repo.get_cluster(plan.cluster)
    return _go(app, cluster, started, token, options, document, report, stop or threading.Event())


def resume(app: AppContext, run_id: int, token: int, *, report: Report, stop: threading.Event) -> RunResult:
    """services.apply.resume hands a rollback's run here once it holds the lease and claimed the run."""
    with app.unit_of_work() as uow:
        started = uow.repo.get_run(run_id)
        plan_record: PlanRecord = uow.repo.get_plan(started.plan_id)
        cluster = uow.repo.get_cluster(started.cluster)
    return _go(app, cluster, started, token, ApplyOptions.from_dict(started.options), dict(plan_record.document),
               report, stop)


def _go(app: AppContext, cluster: ClusterRecord, started: RunRecord, token: int, options: ApplyOptions,
        document: Mapping[str, Any], report: Report, stop: threading.Event) -> RunResult:
    spec = document["rollback"]
    kind = spec.get("kind", str(RollbackKind.ETCD_RESTORE))
    if kind not in (str(RollbackKind.ETCD_RESTORE), str(RollbackKind.SOAK)):
        raise UsageError(f"run {started.id}: a {spec.get('kind')!r} rollback is not supported by this upgrader")
    soak = kind == str(RollbackKind.SOAK)  # binaries and manifests swapped back, no etcd restore, no snapshot file
    with app.unit_of_work() as uow:
        snapshot = uow.repo.get_snapshot(int(spec["snapshot_id"]))
    inventory = spec["inventory"]
    with _LazyEtcd(app, cluster, inventory) as etcd:
        if soak:
            hooks = rollback_soak.hooks(snapshot, spec, etcd.session)
        else:
            hooks = RollbackHooks(
                snapshot_file=lambda: _snapshot_bytes(snapshot),
                artefacts=lambda node: rollback_target.artefacts(snapshot, node),
                member_up=lambda name: etcd.member_up(name, app),
                verify_objects=lambda: _verify_objects(app, cluster, snapshot, spec, inventory))

        def failure(failed: RunRecord, error: StepFailedError) -> dict[str, Any]:
            outcome = failure_outcome(app, cluster, failed, error, spec)
            return rollback_soak.failure(outcome, failed.id) if soak else outcome

        extras = DriveExtras(document=document, inventory=inventory, etcd=etcd.session, rollback=hooks,
                             failure=failure)
        result = _drive(app, cluster, plan_from_dict(dict(document)), started, token, options, report, stop,
                        preflight=lambda: {"passed": True}, extras=extras)
        if result.run.status is RunStatus.SUCCEEDED and not soak:
            _record_restore(app, cluster.name, result.run.id, snapshot, etcd.session())
    if result.run.status is RunStatus.SUCCEEDED and spec.get("rollback_of") is not None:
        _mark_rolled_back(app, int(spec["rollback_of"]), result.run, token)
    return result


def _record_restore(app: AppContext, cluster: str, run_id: int, snapshot: SnapshotRecord,
                    session: EtcdSession | None) -> None:
    """The restored etcd's member ids, on the audit trail: a restore with a new cluster token gives every
    member a new id, and later rollbacks to this cluster's older snapshots must still know it as this one."""
    try:
        ids = sorted(m.id for m in session.members()) if session is not None else []
    except UpgraderError:
        ids = []
    with app.unit_of_work() as uow:
        record_event(app, uow, RESTORED, cluster=cluster, run_id=run_id,
                     data={"snapshot": snapshot.id, "member_ids": ids,
                           "from_member_ids": sorted(snapshot.etcd_status.get("member_ids") or [])})
        uow.commit()


def same_etcd(app: AppContext, cluster: ClusterRecord, snapshot: SnapshotRecord) -> str:
    """Refuse (IntegrityError) a snapshot whose etcd members share none with the live etcd's, counting the
    ids every restore upgrader made of this cluster gave its members; what was found, when it was checked."""
    return compare_members(app, cluster, snapshot, same="same etcd cluster")


def _snapshot_bytes(snapshot: SnapshotRecord) -> bytes:
    from pathlib import Path

    return Path(snapshot.path).read_bytes()  # verified (sha256) before the run; never logged


def _key(o: Mapping[str, Any]) -> str:
    return str(o.get("key") or f"{o['resource']}/{o.get('namespace') or ''}/{o['name']}")


def _vanishing(loss: Mapping[str, Any] | None) -> list[str]:
    if loss is None:
        return []
    return sorted(_key(o) for o in loss.get("objects", []) if o.get("change") == "vanishes")


def _verify_objects(app: AppContext, cluster: ClusterRecord, snapshot: SnapshotRecord, spec: Mapping[str, Any],
                    inventory: Mapping[str, Any]) -> tuple[bool, str]:
    """Objects that existed at snapshot time exist again, those written after it are gone: the loss list,
    made again now, must name none of the objects the preview said would vanish, and no object of the
    snapshot may be missing but pods (the rollback's own drains evict them; their controllers make new ones)."""
    after, why = _loss(app, cluster, snapshot, inventory)
    if after is None:
        return True, f"objects not compared: {why}"
    objects = after.get("objects", [])
    doomed = set(spec.get("loss_vanishes") or [])
    left = [o for o in objects if o.get("change") == "vanishes" and _key(o) in doomed]
    missing = [o for o in objects if o.get("change") == "reappears" and o.get("resource") != "pods"]
    if left or missing:
        said = [f"still there (written after the snapshot): {_names(left)}" if left else "",
                f"missing (existed at snapshot time): {_names(missing)}" if missing else ""]
        return False, "; ".join(s for s in said if s)
    return True, (f"objects match the snapshot ({after.get('keys_compared')} keys compared; "
                  f"{len(spec.get('loss_vanishes') or [])} written after it are gone)")


def _names(objects: list[Mapping[str, Any]]) -> str:
    shown = [f"{o['resource']} {str(o['namespace']) + '/' if o.get('namespace') else ''}{o['name']}" for o in objects]
    return ", ".join(shown[:10]) + (f" (+{len(shown) - 10} more)" if len(shown) > 10 else "")


def _mark_rolled_back(app: AppContext, run_id: int, rollback: RunRecord, token: int) -> None:
    """A failed or interrupted run becomes ``rolled_back`` (claimed with the rollback's lease token first,
    in the same transaction, so nobody ever sees it running); a succeeded one keeps its status, and a
    running one is the automatic rollback's caller's to record."""
    with app.unit_of_work() as uow:
        rolled = uow.repo.get_run(run_id)
        if rolled.status not in (RunStatus.FAILED, RunStatus.INTERRUPTED):
            return
        if rolled.fencing_token != token or rolled.status is RunStatus.INTERRUPTED:
            uow.repo.claim_run(run_id, token=token)  # interrupted (a soak) -> running -> rolled_back
        outcome = dict(rolled.outcome or {}) | {"rolled_back_by": rollback.id,
                                                 "next": [f"rolled back by run {rollback.id}"]}
        uow.repo.set_run_status(run_id, RunStatus.ROLLED_BACK, token=token, outcome=outcome)
        record_event(app, uow, "run-rolled_back", cluster=rolled.cluster, run_id=run_id,
                     data={"rollback": rollback.id})
        uow.commit()


def node_states(run: RunRecord) -> dict[str, list[str]]:
    """Per node, what the rollback did to it and what it did not: the precise state to act from."""
    states: dict[str, list[str]] = {}
    for step in run.steps:
        where = step.node or "cluster"
        states.setdefault(where, []).append(f"{step.action}: {step.status.value}")
    return states


def failure_outcome(app: AppContext, cluster: ClusterRecord, failed: RunRecord, error: StepFailedError,
                    spec: Mapping[str, Any]) -> dict[str, Any]:
    done = {s.n for s in failed.steps if s.status is StepStatus.SUCCEEDED}
    aside = aside_dir(failed.id)
    runbook = restore_entry(cluster.name, spec.get("snapshot_id"))
    return {
        "reason": "rollback step failed",
        "error": error.message,
        "step": error.step.n,
        "action": str(error.step.action),
        "node": error.step.node,
        "output": error.tail,
        "snapshot_id": spec.get("snapshot_id"),
        "rollback_of": spec.get("rollback_of"),
        "nodes": node_states(failed),
        "kept": {"manifests": f"{aside}/manifests", "kubelet_config": f"{aside}/kubelet",
                 "etcd_data": f"ETCD_DATA_DIR.upgrader-rollback-{failed.id}"},
        "deleted": "nothing",
        "runbook": runbook,
        "runbooks": [runbook],
        "next": [f"fix the cause, then finish the rollback: upgrader resume {failed.id}",
                 f"or follow the {runbook['name']} runbook: `{runbook['command']}`; nothing was deleted"],
        "completed_steps": len(done),
    }


class _LazyEtcd(LazyEtcdSession):
    """The etcd session of a rollback, which also tells whether a node's member still answers."""

    def member_up(self, name: str, app: AppContext) -> bool:
        session = self.session()
        if session is None:  # cannot ask (a resume after the stop): give the kubelet its grace instead
            app.clock.sleep(STOP_GRACE)
            return False
        try:
            members = session.members(timeout=3.0)
        except UpgraderError:
            return False  # no member answers any more
        return any(m.name == name and m.healthy for m in members)


__all__: list[str] = ["RollbackPreview", "failure_outcome", "node_states", "preview", "resume", "run",
                      "run_under_lease"]


def rehearse(app: AppContext, *, cluster: str, to: str | None = None) -> dict[str, Any]:
    """``rollback --rehearse``: the chosen snapshot restored into a scratch etcd beside the orchestrator
    (revision, hash, key count, the loss list), never into the cluster; recorded on the snapshot."""
    validate_name(cluster)
    snapshot, _last = rollback_target.choose(app, cluster, to)
    return rollback_loss.rehearse(app, cluster=cluster, snapshot_id=int(snapshot.id)).to_dict()
