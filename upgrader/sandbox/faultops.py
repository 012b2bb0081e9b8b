"""Faults that need objects in the cluster, not just a flag the simulated parts read.

``drain-blocked:NODE`` is the classic real-world drain blocker: a single-replica StatefulSet pod on
NODE with a PodDisruptionBudget of minAvailable 1, so `kubectl drain NODE` keeps retrying its
eviction (HTTP 429) until it times out. The pod is written bound to NODE and running, as its kubelet
would report it (the sandbox's controllers do not run StatefulSets, so nothing moves it). Every
other kind is read from faults.json by the kubelets, kubeadm and the node transport.
"""

from __future__ import annotations

import uuid
from typing import Any

from upgrader.sandbox.apiserver import objects, resources
from upgrader.sandbox.apiserver.storage import Store
from upgrader.sandbox.apiserver.strategies import prepare_create
from upgrader.sandbox.config import SandboxConfig
from upgrader.sandbox.faults import Fault
from upgrader.sandbox.seeding import etcd_kv

NAMESPACE = "demo"


def _pod(node: str) -> dict[str, Any]:
    name = f"pinned-{node}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-0", "namespace": NAMESPACE,
                     "labels": {"app": name, "statefulset.kubernetes.io/pod-name": f"{name}-0"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                                          "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {"nodeName": node, "hostname": f"{name}-0",
                 "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                  "effect": "NoSchedule"}],
                 "containers": [{"name": "db", "image": "registry.k8s.io/pause:3.9"}]},
    }


def _pdb(node: str) -> dict[str, Any]:
    name = f"pinned-{node}"
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": name}}}}


def apply_fault(cfg: SandboxConfig, fault: Fault) -> None:
    if fault.kind != "drain-blocked" or fault.node is None:
        return
    store = Store(etcd_kv(cfg))
    node = store.get(resources.NODES, None, fault.node)
    pdb = _pdb(fault.node)
    if store.try_get(resources.PDBS, NAMESPACE, pdb["metadata"]["name"]) is None:
        store.create(resources.PDBS, prepare_create(resources.PDBS, pdb))
    pod = _pod(fault.node)
    if store.try_get(resources.PODS, NAMESPACE, pod["metadata"]["name"]) is None:
        pod = prepare_create(resources.PODS, pod)
        pod["status"] = objects.running_status(pod, node)
        store.create(resources.PODS, pod)
