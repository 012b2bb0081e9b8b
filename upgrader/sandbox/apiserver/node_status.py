"""Nodes as kubelets write them: registration (or adopting the Node already there) and heartbeats.

The supervisor's seeding and every simulated kubelet register the same Nodes, possibly at once;
both go through :class:`Store` straight to etcd, so a node keeps reporting while API servers
restart, with the compare-and-swap semantics of API writes.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from upgrader.sandbox.apiserver import errors, objects, resources
from upgrader.sandbox.apiserver.storage import Obj, Store, store_of
from upgrader.sandbox.etcd.kv import EtcdKV


class NodeRole(enum.StrEnum):
    CONTROL_PLANE = "control-plane"
    WORKER = "worker"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node as the supervisor knows it.

    ``internal_ip`` is only reported, never bound, and must be a loopback address: tools read a
    node's InternalIP and may connect to it, and a sandbox must never send them to a real private
    network. ``index`` numbers the node's podCIDR (10.244.INDEX.0/24); None takes the first free one.
    """

    name: str
    role: NodeRole
    internal_ip: str
    kubelet_version: str | None = None  # default: the cluster version
    ready: bool = True
    index: int | None = None

    def __post_init__(self) -> None:
        try:
            loopback = ipaddress.ip_address(self.internal_ip).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"node {self.name}: InternalIP {self.internal_ip!r} is not a loopback address (127.x)")


def node_object(spec: NodeSpec, *, version: str, index: int) -> Obj:
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux"}
    node_spec: Obj = {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]}
    if spec.role is NodeRole.CONTROL_PLANE:
        labels |= {objects.CONTROL_PLANE_LABEL: "", "node.kubernetes.io/exclude-from-external-load-balancers": ""}
        node_spec["taints"] = [{"key": objects.CONTROL_PLANE_LABEL, "effect": "NoSchedule"}]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels, "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": node_spec,
            "status": objects.node_status(spec.name, internal_ip=spec.internal_ip,
                                          kubelet_version=spec.kubelet_version or version, ready=spec.ready)}


_REGISTER_ATTEMPTS = 10
# What a kubelet keeps right on an existing Node at registration (kubelet_node_status.go
# updateDefaultLabels and reconcileCMADAnnotationWithExistingNode); roles and taints are kubeadm's
# and stay as they are.
_KUBELET_LABELS = ("beta.kubernetes.io/arch", "beta.kubernetes.io/os", "kubernetes.io/arch", "kubernetes.io/hostname",
                   "kubernetes.io/os")
_KUBELET_ANNOTATIONS = ("volumes.kubernetes.io/controller-managed-attach-detach",)


def register_node(kv: EtcdKV | Store, spec: NodeSpec, *, version: str, prefix: str = "/registry") -> Obj:
    """Create the Node, or adopt the one already there (seeded, or registered before a restart).

    Idempotent and safe to race: the supervisor's seeding and every kubelet may register the same
    node at once. Whoever loses the create takes the winner's object and only puts the kubelet's
    labels and addresses right on it (a kubelet does the same on a node it finds registered).
    """
    store = store_of(kv, prefix)
    wanted = node_object(spec, version=version, index=spec.index or 0)  # what the kubelet keeps right

    def adopt(node: Obj) -> Obj | None:
        return _adopt(node, wanted)

    for _ in range(_REGISTER_ATTEMPTS):
        if store.try_get(resources.NODES, None, spec.name) is None:
            index = spec.index if spec.index is not None else _free_cidr_index(store)
            try:
                return store.create(resources.NODES, node_object(spec, version=version, index=index))
            except errors.ApiError as e:
                if e.reason != "AlreadyExists":
                    raise
                continue  # registered by someone else just now: adopt theirs
        try:
            return store.guaranteed_update(resources.NODES, None, spec.name, adopt)
        except errors.ApiError as e:
            if e.code != 404:  # NotFound: deleted just now, so create it again
                raise
    raise errors.conflict(resources.NODES, spec.name)


def _adopt(node: Obj, wanted: Obj) -> Obj | None:
    meta, want = node["metadata"], wanted["metadata"]
    labels = {**(meta.get("labels") or {}), **{k: want["labels"][k] for k in _KUBELET_LABELS}}
    annotations = {**(meta.get("annotations") or {}), **{k: want["annotations"][k] for k in _KUBELET_ANNOTATIONS}}
    status = node.setdefault("status", {})
    addresses = wanted["status"]["addresses"]
    if (labels, annotations, status.get("addresses")) == (meta.get("labels"), meta.get("annotations"), addresses):
        return None
    meta["labels"], meta["annotations"], status["addresses"] = labels, annotations, addresses
    return node


def _free_cidr_index(store: Store) -> int:
    nodes, _ = store.list(resources.NODES)
    used = {n.get("spec", {}).get("podCIDR") for n in nodes}
    return next(i for i in range(len(nodes) + 1) if f"10.244.{i}.0/24" not in used)


def upsert_node_status(
    kv: EtcdKV | Store, *, node: str | NodeSpec, kubelet_version: str, ready: bool,
    reason: str | None = None, message: str | None = None, prefix: str = "/registry",
) -> Obj:
    """The kubelet's heartbeat: version, conditions (and, given a NodeSpec, its addresses).

    Given a NodeSpec, a missing Node is registered first (:func:`register_node`), so a kubelet that
    starts before the cluster is seeded, or whose Node was deleted, comes back on its own.
    """
    store = store_of(kv, prefix)
    name = node if isinstance(node, str) else node.name
    addresses = None if isinstance(node, str) else objects.node_addresses(node.name, node.internal_ip)

    def heartbeat(obj: Obj) -> Obj:
        status = obj.setdefault("status", {})
        info = objects.node_info(name, kubelet_version)
        info["bootID"] = (status.get("nodeInfo") or {}).get("bootID", info["bootID"])
        status["nodeInfo"] = info
        status["conditions"] = objects.node_conditions(ready, status.get("conditions"), reason=reason,
                                                       message=message)
        if addresses is not None:
            status["addresses"] = addresses
        return obj

    for _ in range(_REGISTER_ATTEMPTS):
        try:
            return store.guaranteed_update(resources.NODES, None, name, heartbeat)
        except errors.ApiError as e:
            if e.code != 404 or isinstance(node, str):
                raise
        register_node(store, node, version=kubelet_version)
    raise errors.conflict(resources.NODES, name)


