"""Preflight: is it safe to start an upgrade? Pure rules over facts the preflight service gathered.

Each check is a condition: a name, a status (passed, failed, ignored: failed but overridden with
``--ignore``, skipped: could not be evaluated, with why), a severity (a failed *blocking* check
refuses the upgrade, a *warning* is reported only), a CamelCase reason and a one-line message.
Nothing here does I/O; the parsers of node output are in :mod:`upgrader.domain.node_output`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from upgrader.domain.catalog import Catalog
from upgrader.domain.inventory import Inventory
from upgrader.domain.planning import plan_upgrade
from upgrader.domain.plans import Plan
from upgrader.domain.replay import ReplayError, replay
from upgrader.domain.validation import validate_cluster_state
from upgrader.domain.versions import Minor, Version
from upgrader.errors import NoUpgradePathError, SkewViolationError

# The annotation upgrader puts on a node it cordons; an unschedulable node without it was cordoned by someone else.
CORDON_ANNOTATION = "upgrader.io/cordoned-by"


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    IGNORED = "ignored"
    SKIPPED = "skipped"


class Severity(StrEnum):
    BLOCKING = "blocking"
    WARNING = "warning"


API = "api-ready"
CONTROL_PLANE = "control-plane-ready"
ETCD = "etcd"
SKEW = "skew"
CORDONED = "cordoned-nodes"
PDB = "disruption-budgets"
CERTS = "certificates"
DISK = "disk-space"
BACKUPS = "kubeadm-backups"
IMAGES = "images"
REMOVED_APIS = "removed-apis"
CHECKS = (API, CONTROL_PLANE, ETCD, SKEW, CORDONED, PDB, CERTS, DISK, BACKUPS, IMAGES, REMOVED_APIS)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    severity: Severity
    reason: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        return self.status is Status.FAILED and self.severity is Severity.BLOCKING

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": str(self.status), "severity": str(self.severity),
                "reason": self.reason, "message": self.message, "details": dict(self.details)}


def passed(name: str, reason: str, message: str, severity: Severity = Severity.BLOCKING, **details: Any) -> Check:
    return Check(name, Status.PASSED, severity, reason, message, details)


def failed(name: str, reason: str, message: str, severity: Severity = Severity.BLOCKING, **details: Any) -> Check:
    return Check(name, Status.FAILED, severity, reason, message, details)


def skipped(name: str, reason: str, why: str, severity: Severity = Severity.BLOCKING) -> Check:
    return Check(name, Status.SKIPPED, severity, reason, why)


def apply_overrides(checks: Iterable[Check], ignore: Iterable[str]) -> list[Check]:
    """Failed checks named in ``ignore`` become ``ignored``: reported, never blocking."""
    names = set(ignore)
    return [replace(c, status=Status.IGNORED) if c.name in names and c.status is Status.FAILED else c for c in checks]


def unknown_checks(names: Iterable[str]) -> list[str]:
    return sorted({n for n in names if n not in CHECKS})


def refused(checks: Iterable[Check]) -> bool:
    return any(c.blocks for c in checks)


def names(items: Iterable[str], limit: int = 8) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --- API and nodes -------------------------------------------------------------------------------

def api_ready(status: int, body: str) -> Check:
    """``GET /readyz?verbose``: 200 is ready; otherwise the failing ``[-]`` checks are named."""
    if status == 200:
        return passed(API, "ApiReady", "/readyz answered 200")
    bad = [line[3:].split(" ", 1)[0] for line in body.splitlines() if line.startswith("[-]")]
    shown = f": {names(bad)} failing" if bad else ""
    return failed(API, "ApiNotReady", f"/readyz answered {status}{shown}", failing=bad)


def node_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def control_plane_ready(control_planes: Sequence[str], ready: Mapping[str, bool]) -> Check:
    not_ready = [n for n in control_planes if not ready.get(n, False)]
    if not control_planes:
        return failed(CONTROL_PLANE, "NoControlPlane", "no control-plane node found")
    if not_ready:
        return failed(CONTROL_PLANE, "ControlPlaneNotReady", f"control-plane nodes not Ready: {names(not_ready)}",
                      nodes=not_ready)
    return passed(CONTROL_PLANE, "ControlPlaneReady", f"{len(control_planes)} control-plane node(s) Ready")


def foreign_cordons(nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Unschedulable nodes that upgrader did not cordon (no :data:`CORDON_ANNOTATION`), by name."""
    found = []
    for node in nodes:
        meta, spec = node.get("metadata") or {}, node.get("spec") or {}
        if spec.get("unschedulable") and CORDON_ANNOTATION not in (meta.get("annotations") or {}):
            found.append(str(meta.get("name", "?")))
    return sorted(found)


def cordoned_nodes(nodes: Iterable[Mapping[str, Any]]) -> Check:
    foreign = foreign_cordons(nodes)
    if foreign:
        return failed(CORDONED, "CordonedBySomeoneElse", f"cordoned by someone else, left as they are: "
                      f"{names(foreign)}", Severity.WARNING, nodes=foreign)
    return passed(CORDONED, "NoForeignCordons", "no node cordoned by someone else", Severity.WARNING)


# --- etcd ----------------------------------------------------------------------------------------

class MemberFacts(Protocol):
    """What the etcd rules read of a member (ports.EtcdMember has these fields)."""

    @property
    def name(self) -> str: ...
    @property
    def healthy(self) -> bool | None: ...
    @property
    def leader(self) -> bool | None: ...
    @property
    def error(self) -> str | None: ...


def etcd_health(members: Sequence[MemberFacts], control_planes: Sequence[str], *, external: bool = False) -> Check:
    """Every member healthy, exactly one leader, and (stacked etcd) members named as the control-plane nodes."""
    if not members:
        return failed(ETCD, "EtcdNoMembers", "etcd listed no members")
    unhealthy = sorted(m.name or "?" for m in members if m.healthy is not True)
    if unhealthy:
        errors = [f"{m.name}: {m.error}" for m in members if m.healthy is not True and m.error]
        detail = f" ({'; '.join(errors[:3])})" if errors else ""
        return failed(ETCD, "EtcdMemberUnhealthy", f"etcd members not healthy: {names(unhealthy)}{detail}",
                      members=unhealthy)
    leaders = sorted(m.name for m in members if m.leader)
    if len(leaders) != 1:
        reason = "EtcdNoLeader" if not leaders else "EtcdSeveralLeaders"
        return failed(ETCD, reason, f"etcd has {len(leaders)} leaders{': ' + names(leaders) if leaders else ''}"
                      " (exactly one expected)", leaders=leaders)
    if not external:
        member_names, nodes = sorted(m.name for m in members), sorted(control_planes)
        if member_names != nodes:
            extra, missing = sorted(set(member_names) - set(nodes)), sorted(set(nodes) - set(member_names))
            parts = ([f"members without a control-plane node: {names(extra)}"] if extra else []) + (
                [f"control-plane nodes without a member: {names(missing)}"] if missing else [])
            return failed(ETCD, "EtcdMembersMismatch", "; ".join(parts) or "member names repeat",
                          members=member_names, control_planes=nodes)
    return passed(ETCD, "EtcdHealthy", f"{len(members)} member(s) healthy, leader {leaders[0]}")


# --- skew ----------------------------------------------------------------------------------------

def skew(inventory: Inventory, target: Version | Minor, catalog: Catalog, *,
         skip: frozenset[Version] = frozenset()) -> tuple[Check, Plan | None]:
    """The skew policy holds now, and a plan to ``target`` exists whose every step keeps it (replayed)."""
    try:
        validate_cluster_state(inventory)
    except SkewViolationError as e:
        return failed(SKEW, "SkewViolated", f"now: {e.message}"), None
    try:
        plan = plan_upgrade(inventory, target, catalog, skip=skip)
    except NoUpgradePathError as e:
        return failed(SKEW, "NoUpgradePath", e.message), None
    if not plan.steps:
        return passed(SKEW, "AlreadyAtTarget", f"the cluster is already at {plan.target}"), plan
    try:
        replay(inventory, plan, skip=skip)
    except ReplayError as e:
        return failed(SKEW, "PlanBreaksSkew", f"the plan to {plan.target} would break a rule: {e}"), None
    hops = " -> ".join(str(h.version) for h in plan.hops) or "workers only"
    return passed(SKEW, "SkewOk", f"skew holds now and along the plan {plan.source_version} -> {hops}"), plan
