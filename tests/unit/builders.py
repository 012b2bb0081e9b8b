"""Literal inventories for planner tests: no files, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime

from upgrader.domain.inventory import ControlPlaneComponents, Inventory, Node
from upgrader.domain.versions import Version

V = Version.parse


def cp(name: str, version: str, *, kubelet: str | None = None, cm: str | None = None,
       ready: bool = True, cordoned: bool = False) -> Node:
    return Node(
        name=name,
        control_plane=True,
        kubelet=V(kubelet or version),
        ready=ready,
        unschedulable=cordoned,
        components=ControlPlaneComponents(V(version), V(cm or version), V(cm or version), "3.5.15-0"),
    )


def worker(name: str, kubelet: str, *, ready: bool = True, cordoned: bool = False) -> Node:
    return Node(name=name, control_plane=False, kubelet=V(kubelet), ready=ready, unschedulable=cordoned)


def inventory(*nodes: Node, cluster: str = "prod") -> Inventory:
    return Inventory(cluster=cluster, observed_at=datetime(2026, 11, 30, tzinfo=UTC), nodes=tuple(nodes))
