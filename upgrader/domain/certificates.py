"""kubeadm's certificates: which expire within a horizon, and the plan that renews them.

kubeadm issues a control plane's certificates for a year and renews them on every `kubeadm upgrade`;
a cluster left alone for a year loses them. The documented renewal (kubernetes.io, "Certificate
Management with kubeadm", manual renewal), per control-plane node, one node at a time:
``kubeadm certs renew all`` (it rewrites the certificates under /etc/kubernetes/pki and the ones
embedded in admin.conf, super-admin.conf, controller-manager.conf and scheduler.conf), then a
restart of the static pods, which keep the certificates they started with: their manifests move
out of /etc/kubernetes/manifests until the kubelet has stopped them (it looks every 20 s) and move
back. The certificate authorities (ten years) are not renewed by kubeadm and are only reported here.

A renewal is a plan like any other, a document of ``kind: certificate-renewal`` run by the same
executor (``upgrader resume`` finishes it): renew-certificates, restart-control-plane and
health-gate per control-plane node. Pure: the service reads ``kubeadm certs check-expiration``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from upgrader.domain.node_output import CertExpiry
from upgrader.domain.plans import REVERSIBILITY, Action, Plan, Step, Strategy
from upgrader.domain.versions import Version

KIND = "certificate-renewal"  # a plan document's "kind" when it renews certificates
DEFAULT_HORIZON_DAYS = 30


@dataclass(frozen=True, slots=True)
class NodeCerts:
    """One control-plane node's certificates as ``kubeadm certs check-expiration`` lists them, or why not."""

    node: str
    certificates: tuple[CertExpiry, ...] = ()
    missing: tuple[str, ...] = ()
    error: str | None = None

    @property
    def leaves(self) -> tuple[CertExpiry, ...]:
        """The certificates kubeadm renews (not the authorities)."""
        return tuple(c for c in self.certificates if not c.authority)

    @property
    def soonest(self) -> datetime | None:
        return min((c.expires for c in self.leaves), default=None)


@dataclass(frozen=True, slots=True)
class CertReport:
    cluster: str
    horizon_days: int
    now: datetime
    nodes: tuple[NodeCerts, ...]

    @property
    def limit(self) -> datetime:
        return self.now + timedelta(days=self.horizon_days)

    @property
    def soonest(self) -> datetime | None:
        """The first expiry of a renewable certificate on any control-plane node."""
        return min((n.soonest for n in self.nodes if n.soonest is not None), default=None)

    @property
    def due(self) -> bool:
        """Some renewable certificate expires within the horizon (or already has)."""
        return self.soonest is not None and self.soonest <= self.limit

    @property
    def unread(self) -> list[str]:
        """Nodes whose certificates could not be read."""
        return [n.node for n in self.nodes if n.error is not None]

    def authorities_due(self) -> list[str]:
        """``node/ca`` of authorities expiring within the horizon: kubeadm does not renew those."""
        return [f"{n.node}/{c.name}" for n in self.nodes for c in n.certificates
                if c.authority and c.expires <= self.limit]

    def to_dict(self) -> dict[str, Any]:
        soonest = self.soonest
        return {
            "cluster": self.cluster,
            "horizon_days": self.horizon_days,
            "now": self.now.isoformat(),
            "due": self.due,
            "soonest": soonest.isoformat() if soonest else None,
            "authorities_due": self.authorities_due(),
            "unread": self.unread,
            "nodes": [{
                "node": n.node,
                "error": n.error,
                "missing": list(n.missing),
                "soonest": n.soonest.isoformat() if n.soonest else None,
                "certificates": [{
                    "name": c.name, "authority": c.authority, "expires": c.expires.isoformat(),
                    "residual": c.residual, "days_left": days_left(c.expires, self.now),
                    "within_horizon": c.expires <= self.limit} for c in n.certificates],
            } for n in self.nodes],
        }


def days_left(expires: datetime, now: datetime) -> int:
    """Whole days until ``expires`` (negative once expired)."""
    return (expires - now) // timedelta(days=1)


def expiries(node: NodeCerts) -> dict[str, str]:
    """The renewable certificates' expiry (ISO 8601) by name: what a renewal records before it acts."""
    return {c.name: c.expires.isoformat() for c in node.leaves}


def renewed(before: Mapping[str, str], now: Sequence[CertExpiry]) -> bool:
    """Every certificate recorded before the renewal now expires later than it did (kubeadm renews all
    of them at once, for its configured validity, so this holds whatever that validity is)."""
    after = {c.name: c.expires for c in now if not c.authority}
    if not before:
        return False
    return all(name in after and after[name] > datetime.fromisoformat(when) for name, when in before.items())


def plan_renewal(cluster: str, control_planes: Mapping[str, Version], *, fingerprint: str = "") -> Plan:
    """Renew, restart and check each control-plane node in turn (sorted by name): one node's control
    plane is down at a time, and the next starts only once the cluster is healthy again. ``control_planes``:
    node -> its API server's version (what its mirror pods must run again after the restart)."""
    steps: list[Step] = []
    for node in sorted(control_planes):
        version = control_planes[node]
        for action in (Action.RENEW_CERTIFICATES, Action.RESTART_CONTROL_PLANE, Action.HEALTH_GATE):
            steps.append(Step(n=len(steps) + 1, action=action, node=node, version=version, batch=None,
                              reversibility=REVERSIBILITY[action]))
    current = max(control_planes.values())
    return Plan(cluster=cluster, source_version=current, target=current, source_fingerprint=fingerprint,
                strategy=Strategy(), skipped_versions=(), hops=(), steps=tuple(steps))


def is_renewal(document: Mapping[str, Any]) -> bool:
    return document.get("kind") == KIND
