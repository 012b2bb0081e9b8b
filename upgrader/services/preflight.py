"""Preflight: gather the facts that say whether an upgrade to a version may start, and judge them.

The API (readiness, nodes, pods, PodDisruptionBudgets, /metrics), etcd (through the shared etcd
session), the control-plane nodes (through their transports) and the snapshot store are read; the
pure rules of :mod:`upgrader.domain.preflight` decide. Nothing on the cluster is changed. Each
``--ignore`` is an override recorded in the ledger with who did it and why, and every run is
recorded with its outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from upgrader.domain import drain_budgets, preflight
from upgrader.domain.host_checks import removed_apis
from upgrader.domain.inventory import Inventory, parse_inventory
from upgrader.domain.names import validate_name
from upgrader.domain.node_output import parse_deprecated_requests
from upgrader.domain.plans import Plan
from upgrader.domain.preflight import CHECKS, ETCD, REMOVED_APIS, Check, failed
from upgrader.domain.records import ClusterRecord
from upgrader.domain.redaction import redact
from upgrader.domain.text import excerpt
from upgrader.domain.versions import Minor, Version, parse_target
from upgrader.errors import ClusterUnreachableError, InvalidInventoryError, UpgraderError, UsageError
from upgrader.services.audit import record_event
from upgrader.services.etcd_access import etcd_session
from upgrader.services.plans import load_catalog
from upgrader.services.preflight_nodes import NodeRequest, node_checks
from upgrader.services.wiring import AppContext, default_snapshot_dir

MAX_REASON = 500  # characters of an override's reason


@dataclass(frozen=True, slots=True)
class PreflightRequest:
    cluster: str
    target: str
    ignore: tuple[str, ...] = ()
    reason: str | None = None
    quick: bool = False


@dataclass(frozen=True, slots=True)
class PreflightReport:
    cluster: str
    target: str  # the version the plan goes to (the request's when there is no plan)
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return not preflight.refused(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "target": self.target, "passed": self.passed,
                "checks": [c.to_dict() for c in self.checks]}


def run_preflight(app: AppContext, request: PreflightRequest) -> PreflightReport:
    """Every check, overrides applied; the run and each override are recorded. Bad input is refused
    (exit 2) before anything is read or recorded."""
    validate_name(request.cluster)
    target = parse_target(request.target)
    reason = _validate_overrides(request)
    with app.unit_of_work() as uow:
        cluster = uow.repo.get_cluster(request.cluster)
    api = app.cluster_api(cluster)
    inventory_doc = api.observe_inventory()
    try:
        inventory = parse_inventory(inventory_doc)
    except InvalidInventoryError as e:
        raise InvalidInventoryError(f"observed inventory of {cluster.name}: {e.message}") from e
    skip = frozenset(Version.parse(s.version) for s in cluster.skips)
    skew_check, plan = preflight.skew(inventory, target, load_catalog(None, app=app), skip=skip)
    final = plan.target if plan is not None else target
    control_planes = [n.name for n in inventory.control_planes]

    status, body = api.readyz()
    checks = [preflight.api_ready(status, body),
              preflight.control_plane_ready(control_planes, {n.name: n.ready for n in inventory.nodes})]
    etcd_check, db_sizes, external = _etcd(app, cluster, inventory_doc, control_planes)
    checks += [etcd_check, skew_check, preflight.cordoned_nodes(api.list_nodes()),
               drain_budgets.disruption_budgets(api.list_pdbs(), api.list_pods())]
    checks += node_checks(app, cluster, NodeRequest(
        control_planes=control_planes, db_sizes=db_sizes, external_etcd=external,
        versions=_image_versions(plan, target), quick=request.quick, now=app.clock.now(),
        snapshot_dir=app.snapshot_dir or default_snapshot_dir(), inventory=inventory_doc))
    checks.append(_removed_apis(api, final.line if isinstance(final, Version) else final))
    checks = preflight.apply_overrides(checks, request.ignore)
    order = {name: i for i, name in enumerate(CHECKS)}
    report = PreflightReport(cluster.name, str(final), tuple(sorted(checks, key=lambda c: order[c.name])))
    _record(app, cluster, report, request, reason, inventory)
    return report


def _validate_overrides(request: PreflightRequest) -> str | None:
    unknown = preflight.unknown_checks(request.ignore)
    if unknown:
        shown = ", ".join(excerpt(n) for n in unknown[:5])
        raise UsageError(f"--ignore: no check named {shown} (checks: {', '.join(CHECKS)})")
    reason = (request.reason or "").strip()
    if request.ignore and not reason:
        raise UsageError("--ignore needs --reason TEXT: an override is recorded with who made it and why")
    if reason and not request.ignore:
        raise UsageError("--reason explains an --ignore; give the check to ignore too")
    if len(reason) > MAX_REASON or any(ord(c) < 32 for c in reason):
        raise UsageError(f"--reason must be one line of at most {MAX_REASON} characters")
    return reason or None


def _etcd(app: AppContext, cluster: ClusterRecord, inventory_doc: dict[str, Any],
          control_planes: list[str]) -> tuple[Check, dict[str, int], bool]:
    """The etcd check, each member's db size by name, and whether etcd is external."""
    try:
        with etcd_session(app, cluster, inventory_doc) as session:
            members = session.members()
            external = session.external
    except (UpgraderError, NotImplementedError, OSError) as e:
        message = e.message if isinstance(e, UpgraderError) else str(e) or type(e).__name__
        return failed(ETCD, "EtcdUnreachable", f"cannot read etcd's members: {redact(message)}"), {}, False
    sizes = {m.name: m.db_size for m in members if m.db_size}
    return preflight.etcd_health(members, control_planes, external=external), sizes, external


def _image_versions(plan: Plan | None, target: Version | Minor) -> list[str]:
    if plan is not None:
        hops = [str(h.version) for h in plan.hops]
        return hops or [str(plan.target)]
    return [str(target)] if isinstance(target, Version) else []


def _removed_apis(api: Any, target: Minor) -> Check:
    try:
        text = api.metrics()
    except ClusterUnreachableError as e:
        return failed(REMOVED_APIS, "MetricsUnavailable", f"cannot read the apiserver's /metrics: {e.message}")
    return removed_apis(parse_deprecated_requests(text), target)


def _record(app: AppContext, cluster: ClusterRecord, report: PreflightReport, request: PreflightRequest,
            reason: str | None, inventory: Inventory) -> None:
    by_name = {c.name: c for c in report.checks}
    with app.unit_of_work() as uow:
        for name in dict.fromkeys(request.ignore):
            check = by_name[name]
            record_event(app, uow, "preflight-override", cluster=cluster.name, data={
                "check": name, "reason": reason, "target": report.target, "status": str(check.status),
                "check_reason": check.reason, "message": check.message})
        record_event(app, uow, "preflight", cluster=cluster.name, data={
            "target": report.target, "passed": report.passed, "fingerprint": inventory.fingerprint,
            "failed": [c.name for c in report.checks if c.status is preflight.Status.FAILED],
            "ignored": [c.name for c in report.checks if c.status is preflight.Status.IGNORED]})
        uow.commit()
