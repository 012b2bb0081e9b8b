"""The inventory: what a cluster runs, node by node, at one moment.

It is the planner's only input about the cluster, read from a JSON document (``--state``) or, in a
later issue, observed live. Parsing is strict: a malformed document is refused with the path of the
offending field, because a plan built on a misread inventory is worse than no plan.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from upgrader.domain.names import is_node_name
from upgrader.domain.text import excerpt
from upgrader.domain.versions import Version
from upgrader.errors import InvalidInventoryError, InvalidVersionError

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
_ETCD_VERSION = re.compile(r"v?[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,4}(-[0-9]{1,3})?", re.ASCII)
_NODE_FIELDS = {"name", "control_plane", "kubelet", "ready", "unschedulable", "components", "kubeadm"}
_DOC_FIELDS = {"cluster", "observed_at", "nodes"}


@dataclass(frozen=True, slots=True)
class ControlPlaneComponents:
    apiserver: Version
    controller_manager: Version
    scheduler: Version
    etcd: str

    @property
    def lowest(self) -> Version:
        """The node's control plane is only as far along as its slowest component."""
        return min(self.apiserver, self.controller_manager, self.scheduler)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    control_plane: bool
    kubelet: Version
    ready: bool
    unschedulable: bool
    components: ControlPlaneComponents | None = None
    kubeadm: Version | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    cluster: str
    observed_at: datetime
    nodes: tuple[Node, ...]

    @property
    def control_planes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.control_plane)

    @property
    def workers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.control_plane)

    @property
    def fingerprint(self) -> str:
        """Identifies the observed versions and roles, not the moment they were seen."""
        doc = inventory_to_dict(self)
        doc.pop("observed_at")
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def inventory_to_dict(inv: Inventory) -> dict[str, Any]:
    nodes = []
    for n in inv.nodes:
        node: dict[str, Any] = {
            "name": n.name,
            "control_plane": n.control_plane,
            "kubelet": str(n.kubelet),
            "ready": n.ready,
            "unschedulable": n.unschedulable,
        }
        if n.components:
            node["components"] = {
                "kube-apiserver": str(n.components.apiserver),
                "kube-controller-manager": str(n.components.controller_manager),
                "kube-scheduler": str(n.components.scheduler),
                "etcd": n.components.etcd,
            }
        if n.kubeadm:
            node["kubeadm"] = str(n.kubeadm)
        nodes.append(node)
    return {"cluster": inv.cluster, "observed_at": inv.observed_at.isoformat(), "nodes": nodes}


def parse_inventory(doc: object) -> Inventory:
    """Validate a decoded JSON document; every error names the field (``nodes[2].kubelet``)."""
    obj = _mapping(doc, "inventory")
    _no_unknown(obj, _DOC_FIELDS, "")
    cluster = _string(obj, "cluster", "cluster")
    observed_at = _timestamp(obj, "observed_at")
    raw_nodes = obj.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise InvalidInventoryError("nodes: must be a non-empty list")
    nodes = tuple(_node(raw, f"nodes[{i}]") for i, raw in enumerate(raw_nodes))
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        if node.name in seen:
            raise InvalidInventoryError(f"nodes[{i}].name: duplicate node name {node.name!r}")
        seen.add(node.name)
    if not any(n.control_plane for n in nodes):
        raise InvalidInventoryError("nodes: no control-plane node (a kubeadm cluster has at least one)")
    return Inventory(cluster=cluster, observed_at=observed_at, nodes=nodes)


def _node(raw: object, where: str) -> Node:
    obj = _mapping(raw, where)
    _no_unknown(obj, _NODE_FIELDS, where + ".")
    name = _string(obj, "name", f"{where}.name")
    if not is_node_name(name):
        raise InvalidInventoryError(f"{where}.name: {excerpt(name)} is not a valid node name")
    control_plane = _bool(obj, "control_plane", f"{where}.control_plane")
    components = None
    if control_plane:
        components = _components(obj.get("components"), f"{where}.components")
    elif obj.get("components") is not None:
        raise InvalidInventoryError(f"{where}.components: only control-plane nodes run control-plane components")
    kubeadm = _version(obj["kubeadm"], f"{where}.kubeadm") if obj.get("kubeadm") is not None else None
    return Node(
        name=name,
        control_plane=control_plane,
        kubelet=_version(obj.get("kubelet"), f"{where}.kubelet"),
        ready=_bool(obj, "ready", f"{where}.ready"),
        unschedulable=_bool(obj, "unschedulable", f"{where}.unschedulable"),
        components=components,
        kubeadm=kubeadm,
    )


def _components(raw: object, where: str) -> ControlPlaneComponents:
    obj = _mapping(raw, where)
    _no_unknown(obj, set(COMPONENTS), where + ".")
    etcd = obj.get("etcd")
    if not isinstance(etcd, str) or not _ETCD_VERSION.fullmatch(etcd):
        raise InvalidInventoryError(f"{where}.etcd: expected an etcd version such as 3.5.15-0, got {excerpt(etcd)}")
    return ControlPlaneComponents(
        apiserver=_version(obj.get("kube-apiserver"), f"{where}.kube-apiserver"),
        controller_manager=_version(obj.get("kube-controller-manager"), f"{where}.kube-controller-manager"),
        scheduler=_version(obj.get("kube-scheduler"), f"{where}.kube-scheduler"),
        etcd=etcd,
    )


def _mapping(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInventoryError(f"{where}: expected an object, got {type(raw).__name__}")
    return raw


def _no_unknown(obj: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise InvalidInventoryError(f"{prefix}{unknown[0]}: unknown field")


def _string(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInventoryError(f"{where}: expected a non-empty string, got {excerpt(value)}")
    return value


def _bool(obj: Mapping[str, Any], key: str, where: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise InvalidInventoryError(f"{where}: expected true or false, got {excerpt(value)}")
    return value


def _version(raw: object, where: str) -> Version:
    if not isinstance(raw, str):
        raise InvalidInventoryError(f"{where}: expected a version string such as v1.30.6, got {excerpt(raw)}")
    try:
        return Version.parse(raw)
    except InvalidVersionError as e:
        raise InvalidInventoryError(f"{where}: {e}") from e


def _timestamp(obj: Mapping[str, Any], key: str) -> datetime:
    value = obj.get(key)
    if not isinstance(value, str):
        raise InvalidInventoryError(f"{key}: expected an ISO 8601 timestamp, got {excerpt(value)}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInventoryError(f"{key}: {excerpt(value)} is not an ISO 8601 timestamp") from e
    if parsed.tzinfo is None:
        raise InvalidInventoryError(f"{key}: {excerpt(value)} has no time zone (write it in UTC, e.g. ...Z)")
    return parsed
