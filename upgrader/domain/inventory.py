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

from upgrader.domain import inventory_facts as facts
from upgrader.domain.inventory_facts import EtcdState, KubeadmConfig, PackageState, Taint
from upgrader.domain.inventory_fields import boolean as _bool
from upgrader.domain.inventory_fields import mapping as _mapping
from upgrader.domain.inventory_fields import no_unknown as _no_unknown
from upgrader.domain.inventory_fields import optional_string
from upgrader.domain.inventory_fields import string as _string
from upgrader.domain.inventory_fields import version as _version
from upgrader.domain.names import is_node_name
from upgrader.domain.text import excerpt
from upgrader.domain.versions import Version
from upgrader.errors import InvalidInventoryError

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
_ETCD_VERSION = re.compile(r"v?[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,4}(-[0-9]{1,3})?", re.ASCII)
_NODE_FIELDS = {"name", "control_plane", "kubelet", "ready", "unschedulable", "components", "kubeadm",
                "taints", "internal_ip", "os_image", "container_runtime", "kernel", "packages"}
_DOC_FIELDS = {"cluster", "observed_at", "nodes", "fingerprint", "kubeadm_config", "etcd"}
_FINGERPRINT = re.compile(r"[0-9a-f]{64}", re.ASCII)


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
    # Observed facts; None where the document does not say (older inventories, hand-written files).
    taints: tuple[Taint, ...] | None = None
    internal_ip: str | None = None
    os_image: str | None = None
    container_runtime: str | None = None
    kernel: str | None = None
    packages: PackageState | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    cluster: str
    observed_at: datetime
    nodes: tuple[Node, ...]
    kubeadm_config: KubeadmConfig | None = None
    etcd: EtcdState | None = None

    @property
    def control_planes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.control_plane)

    @property
    def workers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.control_plane)

    @property
    def fingerprint(self) -> str:
        """Identifies what the cluster runs, not the moment it was seen nor what moves on its own.

        It hashes the document without ``observed_at``, and of the observed facts only what the API
        says (see :func:`inventory_facts.stable_view`): never etcd's members nor the nodes' packages,
        seen through channels whose reachability changes on its own. An inventory without the
        observed facts keeps the fingerprint it had before they existed.
        """
        doc = facts.stable_view(_document(self))
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def inventory_to_dict(inv: Inventory) -> dict[str, Any]:
    """The JSON document (what ``plan --state`` takes), with its fingerprint."""
    doc = _document(inv)
    doc["fingerprint"] = inv.fingerprint
    return doc


def _document(inv: Inventory) -> dict[str, Any]:
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
        if n.taints is not None:
            node["taints"] = [facts.taint_to_dict(t) for t in n.taints]
        for key in ("internal_ip", "os_image", "container_runtime", "kernel"):
            if getattr(n, key) is not None:
                node[key] = getattr(n, key)
        if n.packages is not None:
            node["packages"] = facts.packages_to_dict(n.packages)
        nodes.append(node)
    doc: dict[str, Any] = {"cluster": inv.cluster, "observed_at": inv.observed_at.isoformat(), "nodes": nodes}
    if inv.kubeadm_config is not None:
        doc["kubeadm_config"] = facts.kubeadm_config_to_dict(inv.kubeadm_config)
    if inv.etcd is not None:
        doc["etcd"] = facts.etcd_to_dict(inv.etcd)
    return doc


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
    fingerprint = obj.get("fingerprint")
    if fingerprint is not None and (not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint)):
        # only its shape is checked: a hand-edited what-if file is still a valid input, and gets its own
        raise InvalidInventoryError(f"fingerprint: expected 64 hex digits, got {excerpt(fingerprint)}")
    raw_config = obj.get("kubeadm_config")
    kubeadm_config = facts.parse_kubeadm_config(raw_config) if raw_config is not None else None
    etcd = facts.parse_etcd(obj["etcd"]) if obj.get("etcd") is not None else None
    return Inventory(cluster=cluster, observed_at=observed_at, nodes=nodes, kubeadm_config=kubeadm_config, etcd=etcd)


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
        taints=facts.parse_taints(obj["taints"], f"{where}.taints") if obj.get("taints") is not None else None,
        internal_ip=facts.parse_ip(obj["internal_ip"], f"{where}.internal_ip")
        if obj.get("internal_ip") is not None else None,
        os_image=optional_string(obj, "os_image", f"{where}.os_image", limit=256),
        container_runtime=optional_string(obj, "container_runtime", f"{where}.container_runtime", limit=256),
        kernel=optional_string(obj, "kernel", f"{where}.kernel", limit=256),
        packages=None if obj.get("packages") is None else facts.parse_packages(obj["packages"], f"{where}.packages"),
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
