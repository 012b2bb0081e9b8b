"""Faults that need objects in the cluster, not just a flag the simulated parts read.

``drain-blocked:NODE`` is the classic real-world drain blocker: a single-replica workload pinned to
NODE by a ``nodeSelector`` (a database, say) with a PodDisruptionBudget of minAvailable 1, so
`kubectl drain NODE` keeps retrying its eviction (HTTP 429) until it times out. It is an ordinary
Deployment: the controllers create and place its pod as they would anyone's, and nothing else can
take the pod's place while NODE is cordoned. The state faults (node/state_faults.py) change the node's
files once. Every other kind is read from faults.json by the kubelets, kubeadm and the node transport.
"""

from __future__ import annotations

from typing import Any

from upgrader.sandbox.apiserver import errors, objects, resources
from upgrader.sandbox.apiserver.storage import Store
from upgrader.sandbox.apiserver.strategies import prepare_create
from upgrader.sandbox.etcd.kv import EtcdKV
from upgrader.sandbox.faults import STATE_KINDS, Fault
from upgrader.sandbox.node import state_faults
from upgrader.sandbox.sandbox_config import SandboxConfig

NAMESPACE = "demo"


def _name(node: str) -> str:
    return f"pinned-{node}"


def _deployment(node: str) -> dict[str, Any]:
    labels = {"app": _name(node)}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": _name(node), "namespace": NAMESPACE, "labels": dict(labels)},
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": dict(labels)}, "spec": {
                     "nodeSelector": {"kubernetes.io/hostname": node},
                     "tolerations": [{"key": objects.CONTROL_PLANE_LABEL, "operator": "Exists",
                                      "effect": "NoSchedule"}],
                     "containers": [{"name": "db", "image": "registry.k8s.io/pause:3.9"}]}}},
    }


def _pdb(node: str) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": _name(node), "namespace": NAMESPACE},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": _name(node)}}}}


def block_drain(store: Store, node: str) -> None:
    """The drain-blocked objects for ``node``; those that exist are kept."""
    store.get(resources.NODES, None, node)  # NotFound for a node the cluster does not have
    for rt, obj in ((resources.PDBS, _pdb(node)), (resources.DEPLOYMENTS, _deployment(node))):
        try:
            store.create(rt, prepare_create(rt, obj))
        except errors.ApiError as e:
            if e.reason != "AlreadyExists":
                raise


def apply_fault(cfg: SandboxConfig, fault: Fault) -> None:
    if fault.kind in STATE_KINDS:
        state_faults.apply(cfg, fault)
    elif fault.kind == "drain-blocked" and fault.node is not None:
        block_drain(Store(EtcdKV(cfg.etcd_client_urls, timeout=3)), fault.node)
