"""`upgrader certs check|renew CLUSTER`: kubeadm's certificates, read and renewed before they expire.

check reads ``kubeadm certs check-expiration`` on every control-plane node (over the node transports)
and says which certificates expire within the horizon; nothing changes.

renew records a plan whose document says ``kind: certificate-renewal`` (domain.certificates: per
control-plane node, renew-certificates, restart-control-plane, health-gate) with what check-expiration
said before, and runs it like an apply's under the cluster's lease (or the lease the caller holds: the
scheduler's tick), one node at a time; ``upgrader resume RUN`` finishes an interrupted one. A failed
renewal leaves every manifest in place (a restart that fails puts them back, or says it could not),
and names the commands to go on.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from upgrader.domain.certificates import (
    DEFAULT_HORIZON_DAYS,
    KIND,
    CertReport,
    NodeCerts,
    expiries,
    plan_renewal,
)
from upgrader.domain.inventory import parse_inventory
from upgrader.domain.names import validate_name
from upgrader.domain.node_output import parse_cert_expiration
from upgrader.domain.plans import Plan, plan_from_dict
from upgrader.domain.records import ClusterRecord, RunRecord
from upgrader.domain.runbook_hints import hint_for
from upgrader.domain.runs import StepStatus
from upgrader.engine.context import ApplyOptions
from upgrader.engine.executor import StepFailedError
from upgrader.errors import PreflightError, TransportError
from upgrader.nodes import commands
from upgrader.services.apply import DriveExtras, Report, RunResult, _drive, _lease
from upgrader.services.audit import record_event
from upgrader.services.etcd_access import LazyEtcdSession
from upgrader.services.run_options import run_options
from upgrader.services.run_outcome import failed_step, with_runbooks
from upgrader.services.wiring import AppContext

CHECK_TIMEOUT = 60.0
RESTART_DIR = "/etc/kubernetes/upgrader-certs-{run}/manifests"

__all__ = ["CertReport", "RenewalPreview", "expiring", "preview", "renew", "resume"]


def expiring(app: AppContext, cluster: str, *, horizon_days: int = DEFAULT_HORIZON_DAYS,
             now: datetime | None = None) -> CertReport:
    """Every control-plane node's certificates and whether any expires within ``horizon_days`` of ``now``."""
    validate_name(cluster)
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    report, _inventory = _read(app, record, horizon_days=horizon_days, now=now or app.clock.now())
    return report


def _read(app: AppContext, record: ClusterRecord, *, horizon_days: int,
          now: datetime) -> tuple[CertReport, dict[str, Any]]:
    doc = app.cluster_api(record).observe_inventory()
    nodes = [_node_certs(app, record, n.name, doc) for n in parse_inventory(doc).control_planes]
    return CertReport(record.name, horizon_days, now, tuple(sorted(nodes, key=lambda n: n.node))), doc


def _node_certs(app: AppContext, record: ClusterRecord, node: str, inventory: Mapping[str, Any]) -> NodeCerts:
    argv = commands.certs_check()
    try:
        result = app.transport(record, node, inventory=inventory).run(argv, CHECK_TIMEOUT)
    except TransportError as e:
        return NodeCerts(node, error=_line(e.message))
    if not result.ok:
        return NodeCerts(node, error=f"`{' '.join(argv)}` exited {result.exit_code}: "
                                     f"{_line(result.stderr or result.stdout)}")
    rows, missing = parse_cert_expiration(result.stdout)
    if not rows:
        return NodeCerts(node, missing=tuple(missing), error=f"`{' '.join(argv)}` listed no certificate")
    return NodeCerts(node, tuple(rows), tuple(missing))


def _line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:200]


@dataclass(frozen=True, slots=True)
class RenewalPreview:
    """What a renewal will do, read before anything changes: the certificates now and the plan's steps."""

    report: CertReport
    plan: Plan
    inventory: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.plan.cluster, "kind": KIND, "certificates": self.report.to_dict(),
                "steps": [s.to_dict() | {"would": _would(s.n, s.action, s.node)} for s in self.plan.steps]}


def _would(n: int, action: str, node: str | None) -> list[str]:
    if action == "renew-certificates":
        return [f"{node}: kubeadm certs renew all (under flock /etc/kubernetes)",
                "kubeadm certs check-expiration: every certificate expires later than before"]
    if action == "restart-control-plane":
        aside = RESTART_DIR.format(run="RUN")
        return [f"{node}: move the kube-apiserver, kube-controller-manager, kube-scheduler and etcd manifests to "
                f"{aside}", "wait until `crictl ps` no longer lists them (the kubelet looks every 20s)",
                "move them back; wait for /readyz and each mirror pod running a newly started container"]
    return [f"GET /readyz, nodes, the control-plane pods of {node}; etcd endpoint health, until 3 good readings "
            "in a row"]


def preview(app: AppContext, cluster: str, *, horizon_days: int = DEFAULT_HORIZON_DAYS,
            now: datetime | None = None) -> RenewalPreview:
    """The renewal's plan and the certificates it starts from; PreflightError (exit 4) when a
    control-plane node's certificates cannot be read (nothing is changed)."""
    validate_name(cluster)
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    report, doc = _read(app, record, horizon_days=horizon_days, now=now or app.clock.now())
    if report.unread or not report.nodes:
        why = "; ".join(f"{n.node}: {n.error}" for n in report.nodes if n.error) or "no control-plane node"
        raise PreflightError(f"cannot renew the certificates of {cluster}: {why} (nothing was changed)")
    inventory = parse_inventory(doc)
    versions = {n.name: (n.components.apiserver if n.components else n.kubelet) for n in inventory.control_planes}
    plan = plan_renewal(cluster, versions, fingerprint=inventory.fingerprint)
    return RenewalPreview(report, plan, doc)


def renew(app: AppContext, cluster: str, *, options: ApplyOptions | None = None,
          report: Report = lambda e: None, stop: threading.Event | None = None, lease_token: int | None = None,
          horizon_days: int = DEFAULT_HORIZON_DAYS, previewed: RenewalPreview | None = None) -> RunResult:
    """Renew every control-plane node's certificates and restart its static pods, one node at a time,
    recorded as a run. Under the cluster's lease, taken here (RunLockedError, exit 7, when another run
    holds it) or ``lease_token``'s when the caller already holds it."""
    options = options or run_options(auto_rollback=False)
    stop = stop or threading.Event()
    if lease_token is not None:
        return _renew_under(app, cluster, lease_token, options, report, stop, horizon_days, previewed)
    with _lease(app, cluster, run_id=None) as token:
        return _renew_under(app, cluster, token, options, report, stop, horizon_days, previewed)


def _renew_under(app: AppContext, cluster: str, token: int, options: ApplyOptions, report: Report,
                 stop: threading.Event, horizon_days: int, previewed: RenewalPreview | None) -> RunResult:
    previewed = previewed or preview(app, cluster, horizon_days=horizon_days)
    plan = previewed.plan
    document = plan.to_dict() | {"kind": KIND, "certificates": {
        "horizon_days": horizon_days,
        "before": {n.node: expiries(n) for n in previewed.report.nodes},
        "soonest": previewed.report.to_dict()["soonest"],
        "inventory": dict(previewed.inventory)}}
    with app.unit_of_work() as uow:
        plan_id = uow.repo.save_plan(cluster=cluster, observation=None, created_by=app.actor.user,
                                     target=str(plan.target), strategy=document["strategy"], skipped_versions=[],
                                     source_fingerprint=None, document=document, steps=document["steps"])
        started = uow.repo.create_run(plan_id=plan_id, started_by=app.actor.user, host=app.actor.host,
                                      command_line=app.actor.command_line, token=token, options=options.to_dict())
        record_event(app, uow, "certificate-renewal-started", cluster=cluster, run_id=started.id,
                     data={"plan": plan_id, "soonest": document["certificates"]["soonest"],
                           "due": previewed.report.due, "horizon_days": horizon_days})
        uow.commit()
        record = uow.repo.get_cluster(cluster)
    return _go(app, record, started, token, options, document, report, stop)


def resume(app: AppContext, run_id: int, token: int, *, report: Report = lambda e: None,
           stop: threading.Event | None = None) -> RunResult:
    """services.apply.resume hands a renewal's run here once it holds the lease and claimed the run."""
    with app.unit_of_work() as uow:
        started = uow.repo.get_run(run_id)
        plan_record = uow.repo.get_plan(started.plan_id)
        record = uow.repo.get_cluster(started.cluster)
    return _go(app, record, started, token, ApplyOptions.from_dict(started.options), dict(plan_record.document),
               report, stop or threading.Event())


def _go(app: AppContext, cluster: ClusterRecord, started: RunRecord, token: int, options: ApplyOptions,
        document: Mapping[str, Any], report: Report, stop: threading.Event) -> RunResult:
    spec = document["certificates"]
    plan = plan_from_dict(dict(document))
    nodes = sorted({s.node for s in plan.steps if s.node})
    with LazyEtcdSession(app, cluster, spec["inventory"]) as etcd:
        extras = DriveExtras(
            document=document, inventory=spec["inventory"], etcd=etcd.session, rollback=None,
            failure=lambda failed, error: failure_outcome(cluster.name, failed, error),
            succeeded={"summary": f"certificates of {cluster.name} renewed and the control plane restarted on "
                                  f"{', '.join(nodes)}",
                       "certificates": {"renewed": nodes},
                       "note": "admin.conf was rewritten on each control-plane node: copy it again wherever "
                               "it is used (a kubeconfig made from it carries the old client certificate)"})
        return _drive(app, cluster, plan, started, token, options, report, stop,
                      preflight=lambda: {"passed": True}, extras=extras)


def failure_outcome(cluster: str, failed: RunRecord, error: StepFailedError) -> dict[str, Any]:
    """What a failed renewal leaves: each node's steps, the manifests' state, and how to go on."""
    step = error.step
    states: dict[str, list[str]] = {}
    for s in failed.steps:
        states.setdefault(s.node or "cluster", []).append(f"{s.action}: {s.status.value}")
    nexts = [f"find and fix the cause, then continue: upgrader resume {failed.id}"]
    stopped = "STOPPED" in error.message
    if stopped:
        aside = RESTART_DIR.format(run=failed.id)
        nexts.insert(0, f"the control plane of {step.node} is stopped: put its manifests back from {aside} to "
                        "/etc/kubernetes/manifests (or `upgrader resume` does it)")
    renewed = [s.node for s in failed.steps if s.action == "renew-certificates" and s.status is StepStatus.SUCCEEDED]
    if renewed:
        nexts.append(f"certificates already renewed on {', '.join(n for n in renewed if n)}: their static pods "
                     "use the old ones until restarted")
    outcome = {
        "reason": "certificate renewal step failed",
        "error": error.message,
        "step": step.n,
        "action": str(step.action),
        "node": step.node,
        "output": error.tail,
        "nodes": states,
        "control_plane_stopped": step.node if stopped else None,
        "cluster": cluster,
        "next": nexts,
    }
    return with_runbooks(outcome, [hint_for(failed_step(error))], cluster)
