"""A whole kubeadm cluster on the in-package fakes, for the apply engine's unit tests.

Its nodes are :class:`~tests.unit.fake_node.FakeNode`s (apt or dnf), its API a FakeClusterApi whose
inventory follows its nodes and mirror pods (as the real one's does) and whose calls about chosen
nodes can be made to fail, etcd a FakeEtcdTool behind an etcd session, the ledger the in-memory one,
time a FakeClock; the cluster ``prod`` is registered and :meth:`NodeWorld.plan` records a live plan.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.unit.builders import cp, inventory, worker
from tests.unit.fake_node import (
    APT_LIST,
    COMPONENTS,
    MANIFESTS,
    READ_ONLY,
    YUM_REPO,
    FakeNode,
    build,
    manifest,
)
from upgrader import errors
from upgrader.domain.inventory import inventory_to_dict
from upgrader.domain.records import RunRecord, RunStepRecord
from upgrader.domain.versions import Version
from upgrader.fakes import FakeClock, FakeClusterApi, FakeEtcdTool, InMemoryLedger
from upgrader.ports import EtcdMember
from upgrader.services.etcd_access import EtcdSession
from upgrader.services.plans import PlanRequest, make_plan
from upgrader.services.wiring import Actor, AppContext

__all__ = ["APT_LIST", "CLUSTER", "MANIFESTS", "READ_ONLY", "YUM_REPO", "FakeNode", "LiveApi", "NodeWorld", "build"]

CLUSTER = "prod"
MIRROR = "kubernetes.io/config.mirror"
_KUBERNETES_VERSION = re.compile(r"^kubernetesVersion: (\S+)$", re.MULTILINE)


class LiveApi(FakeClusterApi):
    """The fake API, whose inventory is read from its nodes and mirror pods as they are now (as the
    real one's is), and which can be made to fail every call about some nodes (``down``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.down: set[str] = set()

    def observe_inventory(self) -> dict[str, Any]:
        doc = super().observe_inventory()
        doc.pop("fingerprint", None)
        nodes = {n["metadata"]["name"]: n for n in self.nodes}
        for entry in doc["nodes"]:
            node = nodes[entry["name"]]
            entry["kubelet"] = node["status"]["nodeInfo"]["kubeletVersion"]
            entry["ready"] = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
            entry["unschedulable"] = bool(node["spec"].get("unschedulable"))
            for pod in self.pods:
                labels = pod["metadata"].get("labels") or {}
                if pod["spec"].get("nodeName") == entry["name"] and labels.get("component") in COMPONENTS:
                    entry["components"][labels["component"]] = pod["spec"]["containers"][0]["image"].rsplit(":", 1)[1]
        return doc

    def _about(self, node: str) -> None:
        if node in self.down:
            raise errors.ClusterUnreachableError(f"cannot reach the API about node {node}: connection refused")

    def get_node(self, name: str) -> dict[str, Any] | None:
        self._about(name)
        return super().get_node(name)

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self._about(name)
        return super().patch_node(name, patch)

    def list_node_pods(self, node: str) -> list[dict[str, Any]]:
        self._about(node)
        return super().list_node_pods(node)


def mirror_pod(component: str, node: str, version: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{component}-{node}", "namespace": "kube-system", "uid": f"uid-{component}-{node}",
                         "labels": {"component": component, "tier": "control-plane"},
                         "annotations": {MIRROR: "hash"}, "ownerReferences": [{"kind": "Node", "name": node}]},
            "spec": {"nodeName": node, "containers": [{"name": component,
                                                        "image": f"registry.k8s.io/{component}:{version}"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def workload_pod(name: str, node: str, *, app: str = "web") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "uid": f"uid-{name}", "labels": {"app": app},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": f"{app}-rs", "controller": True}]},
            "spec": {"nodeName": node}, "status": {"phase": "Running"}}


class NodeWorld:
    """A cluster ``prod`` of ``control_planes`` + ``workers`` nodes at ``version``, registered in the ledger."""

    def __init__(self, tmp: Path, *, control_planes: int = 1, workers: int = 1, version: str = "v1.30.6",
                 manager: str = "apt") -> None:
        self.clock = FakeClock()
        self.ledger = InMemoryLedger(clock=self.clock.now)
        self.version = Version.parse(version)
        cps = [f"cp-{i}" for i in range(1, control_planes + 1)]
        ws = [f"w-{i}" for i in range(1, workers + 1)]
        live = inventory(*(cp(n, version) for n in cps), *(worker(n, version) for n in ws), cluster=CLUSTER)
        pods = [mirror_pod(c, n, version) for n in cps for c in COMPONENTS]
        pods += [workload_pod(f"web-{n}", n) for n in ws]
        self.api = LiveApi(inventory_to_dict(live), pods=pods, clock=self.clock, configmaps={
            ("kube-system", "kubeadm-config"): {"ClusterConfiguration": self._cluster_configuration(self.version)}})
        self.etcd = FakeEtcdTool(members=[
            EtcdMember(id=f"{i:016x}", name=n, peer_urls=(f"https://10.0.0.{i}:2380",),
                       client_urls=(f"https://10.0.0.{i}:2379",), healthy=True, leader=i == 1, db_size=20480,
                       revision=4242, version="3.5.15") for i, n in enumerate(cps, 1)])
        self.nodes = {n: FakeNode(self, n, control_plane=n in cps, manager=manager, version=self.version)
                      for n in cps + ws}
        self.store = tmp / "store"
        self.app = AppContext(
            actor=Actor(user="alice", host="ops-1", command_line="upgrader apply"), clock=self.clock,
            unit_of_work_factory=self.ledger.unit_of_work, cluster_api_factory=lambda record: self.api,
            transport_factory=lambda record, node: self.nodes[node], etcd_tool_factory=lambda: self.etcd,
            etcd_session_factory=self._session, snapshot_dir=self.store)
        with self.ledger.unit_of_work() as uow:
            uow.repo.add_cluster(name=CLUSTER, kubeconfig="/k", context=None, transport=None, actor="alice")
            uow.commit()

    # -- what the nodes' commands change in the API ---------------------------------------------------

    @staticmethod
    def _cluster_configuration(version: Version) -> str:
        return ("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
                f"kubernetesVersion: {version}\netcd:\n  local:\n    dataDir: /var/lib/etcd\n")

    def cluster_version(self) -> Version:
        text = self.api.configmaps[("kube-system", "kubeadm-config")]["ClusterConfiguration"]
        found = _KUBERNETES_VERSION.search(text)
        assert found is not None
        return Version.parse(found.group(1))

    def set_cluster_version(self, version: Version) -> None:
        self.api.configmaps[("kube-system", "kubeadm-config")] = {
            "ClusterConfiguration": self._cluster_configuration(version)}

    def move_control_plane(self, node: FakeNode, version: Version) -> None:
        for component in COMPONENTS:
            node.files[f"{MANIFESTS}/{component}.yaml"] = (manifest(component, str(version)), 0o600)
        for pod in self.api.pods:
            if pod["spec"].get("nodeName") == node.name and pod["metadata"]["labels"].get("component") in COMPONENTS:
                pod["spec"]["containers"][0]["image"] = pod["spec"]["containers"][0]["image"].rsplit(":", 1)[0] + \
                    f":{version}"

    def set_kubelet(self, node: str, version: Version) -> None:
        for n in self.api.nodes:
            if n["metadata"]["name"] == node:
                n["status"]["nodeInfo"]["kubeletVersion"] = str(version)

    def set_ready(self, node: str, ready: bool) -> None:
        for n in self.api.nodes:
            if n["metadata"]["name"] == node:
                n["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]

    def kubelets(self) -> dict[str, str]:
        return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in self.api.nodes}

    @contextlib.contextmanager
    def _session(self, cluster: Any, inventory: Mapping[str, Any] | None) -> Iterator[EtcdSession]:
        endpoints = {m.client_urls[0]: m.name for m in self.etcd.etcd_members}
        yield EtcdSession(tool=self.etcd, endpoints=list(endpoints), tls=None, external=False,
                          node_of_endpoint=endpoints)

    # -- the ledger ---------------------------------------------------------------------------------

    def plan(self, to: str = "v1.31", *, max_unavailable: int = 1) -> int:
        made = make_plan(self.app, PlanRequest(cluster=CLUSTER, target=to, state=None, catalog=None,
                                               max_unavailable=max_unavailable))
        assert made.plan_id is not None
        return made.plan_id

    def run(self, run_id: int) -> RunRecord:
        with self.ledger.unit_of_work() as uow:
            return uow.repo.get_run(run_id)

    def runs(self) -> list[RunRecord]:
        with self.ledger.unit_of_work() as uow:
            return uow.repo.list_runs(CLUSTER)

    def steps(self, run_id: int) -> dict[int, RunStepRecord]:
        return {s.n: s for s in self.run(run_id).steps}

    def events(self) -> list[str]:
        with self.ledger.unit_of_work() as uow:
            return [e.kind for e in uow.repo.list_events(CLUSTER, limit=10_000)]

    def all_commands(self) -> list[tuple[str, list[str]]]:
        return [(name, argv) for name, node in self.nodes.items() for argv in node.ran]
