"""The cluster health checks several use cases share: the API answers and its /readyz says ready, every
control-plane node is Ready, every etcd member is healthy and there is exactly one leader.

Each check is a :class:`HealthCheck` with a CamelCase reason (the shape preflight uses for its
conditions), so a report can be shown, recorded with a snapshot, or turned into a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upgrader.ports import ClusterApi, EtcdMember


@dataclass(frozen=True, slots=True)
class HealthCheck:
    reason: str  # CamelCase, e.g. ControlPlaneNotReady
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class HealthReport:
    checks: tuple[HealthCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def summary(self) -> str:
        failed = [c.message for c in self.checks if not c.ok]
        return "; ".join(failed) if failed else "; ".join(c.message for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [{"reason": c.reason, "ok": c.ok, "message": c.message} for c in self.checks]}


def control_plane_checks(inventory: Mapping[str, Any]) -> list[HealthCheck]:
    """The API answered (we hold its inventory) and every control-plane node is Ready."""
    nodes = [n for n in inventory.get("nodes", []) if n.get("control_plane")]
    checks = [HealthCheck("ApiReachable", True, "the API answered")]
    not_ready = sorted(str(n.get("name")) for n in nodes if not n.get("ready"))
    if not nodes:
        checks.append(HealthCheck("NoControlPlaneNodes", False, "the API lists no control-plane node"))
    elif not_ready:
        checks.append(HealthCheck("ControlPlaneNotReady", False, f"control-plane node(s) not Ready: "
                                  f"{', '.join(not_ready)}"))
    else:
        checks.append(HealthCheck("ControlPlaneReady", True, f"{len(nodes)}/{len(nodes)} control-plane nodes Ready"))
    return checks


def etcd_checks(members: Sequence[EtcdMember]) -> list[HealthCheck]:
    """Every member healthy, exactly one leader."""
    unhealthy = sorted(f"{m.name or m.id}{f' ({m.error})' if m.error else ''}" for m in members if not m.healthy)
    leaders = sorted(m.name or m.id for m in members if m.leader)
    checks = []
    if not members:
        checks.append(HealthCheck("EtcdNoMembers", False, "etcd lists no members"))
    elif unhealthy:
        checks.append(HealthCheck("EtcdMemberUnhealthy", False, f"etcd member(s) unhealthy: {', '.join(unhealthy)}"))
    else:
        checks.append(HealthCheck("EtcdHealthy", True, f"{len(members)}/{len(members)} etcd members healthy"))
    if len(leaders) == 1:
        checks.append(HealthCheck("EtcdLeader", True, f"etcd leader {leaders[0]}"))
    else:
        checks.append(HealthCheck("EtcdLeaderCount", False, f"etcd has {len(leaders)} leaders"
                                  + (f" ({', '.join(leaders)})" if leaders else "")))
    return checks


def readyz_check(answer: tuple[int, str]) -> HealthCheck:
    """The API's own verdict: ``/readyz`` answers 200 (its body names the failing checks otherwise)."""
    status, body = answer
    if status == 200:
        return HealthCheck("ApiReady", True, "/readyz answered 200")
    failed = [line.strip() for line in body.splitlines() if "failed" in line][:3]
    detail = f": {'; '.join(failed)}" if failed else ""
    return HealthCheck("ApiNotReady", False, f"/readyz answered {status}{detail}")


def observe_health(api: ClusterApi, members: Sequence[EtcdMember]) -> tuple[HealthReport, dict[str, Any]]:
    """The health report and the inventory it was read from (ClusterUnreachableError when the API is down)."""
    inventory = api.observe_inventory()
    checks = [*control_plane_checks(inventory), readyz_check(api.readyz()), *etcd_checks(members)]
    return HealthReport(tuple(checks)), inventory
