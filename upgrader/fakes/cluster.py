"""A cluster API that answers with given documents, or as unreachable, and keeps what a drain writes."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from upgrader import errors
from upgrader.fakes.disruption import budget_refusal, merge_patch
from upgrader.ports import Clock


class FakeClusterApi:
    """A cluster API that answers with a fixed inventory document, or as unreachable.

    The preflight reads answer what was given: ``nodes`` (API JSON; derived from the inventory when
    not given), ``pods``, ``pdbs``, ``readyz`` (status, body) and ``metrics`` (Prometheus text);
    ``configmaps`` maps (namespace, name) to a ConfigMap's data.

    The drain's writes change ``nodes`` and ``pods`` in place. An eviction honours the pod's
    PodDisruptionBudget (its disruptionsAllowed computed from the pods now, as the API does) and
    :meth:`refuse_evictions` makes a pod's next evictions answer 429 whatever the budget says. With a
    ``clock``, an evicted pod stays ``terminating_seconds`` (deletionTimestamp set) before it is gone,
    and :meth:`after` changes the cluster once the clock has moved on; ``on_evicted`` is called with
    each evicted pod (a test's controller, recreating it on another node).
    """

    def __init__(self, inventory: Mapping[str, Any] | None = None, *, unreachable: str | None = None,
                 nodes: Sequence[Mapping[str, Any]] | None = None, pods: Sequence[Mapping[str, Any]] = (),
                 pdbs: Sequence[Mapping[str, Any]] = (), readyz: tuple[int, str] = (200, "readyz check passed\n"),
                 metrics: str = "", configmaps: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
                 clock: Clock | None = None, terminating_seconds: float = 0.0,
                 on_evicted: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._inventory = copy.deepcopy(dict(inventory)) if inventory is not None else None
        self._unreachable = unreachable
        self.configmaps = {key: dict(data) for key, data in (configmaps or {}).items()}  # (namespace, name) -> data
        self.calls = 0
        self.nodes = [copy.deepcopy(dict(n)) for n in nodes] if nodes is not None else _api_nodes(self._inventory)
        self.pods = [copy.deepcopy(dict(p)) for p in pods]
        self.pdbs = [copy.deepcopy(dict(p)) for p in pdbs]
        self.readyz_answer = readyz
        self.paths: dict[str, tuple[int, str] | list[tuple[int, str]]] = {}  # get_path's answers
        self.metrics_text = metrics
        self.clock, self.terminating_seconds, self.on_evicted = clock, terminating_seconds, on_evicted
        self._refusals: dict[tuple[str, str], int] = {}
        self._timers: list[tuple[float, Callable[[], None]]] = []
        self.version_info: dict[str, Any] | None = None  # /version; None: made from the inventory's control plane

    def observe_inventory(self) -> dict[str, Any]:
        self.calls += 1
        if self._unreachable is not None or self._inventory is None:
            raise errors.ClusterUnreachableError(self._unreachable or "cluster unreachable")
        return copy.deepcopy(self._inventory)

    def _reach(self) -> None:
        if self._unreachable is not None:
            raise errors.ClusterUnreachableError(self._unreachable)
        now = self.clock.monotonic() if self.clock is not None else 0.0
        due = [change for at, change in self._timers if at <= now]
        self._timers = [(at, change) for at, change in self._timers if at > now]
        for change in due:
            change()

    def after(self, seconds: float, change: Callable[[], None]) -> None:
        """Make ``change`` once the clock has moved ``seconds`` on (the next API call sees it)."""
        if self.clock is None:
            raise ValueError("FakeClusterApi.after needs a clock")
        self._timers.append((self.clock.monotonic() + seconds, change))

    def refuse_evictions(self, namespace: str, name: str, times: int) -> None:
        """The pod's next ``times`` evictions answer 429, as a budget that is not ready to let it go."""
        self._refusals[(namespace, name)] = times

    def _pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return next((p for p in self.pods if p["metadata"].get("namespace") == namespace
                     and p["metadata"].get("name") == name), None)

    def readyz(self) -> tuple[int, str]:
        self._reach()
        return self.readyz_answer

    def get_path(self, path: str, *, timeout: float) -> tuple[int, str]:
        """``paths[path]`` when set (a status and body, or a list of them answered in turn, the last one
        kept); /readyz answers as readyz(); anything else 404."""
        self._reach()
        found = self.paths.get(path)
        if isinstance(found, list):
            return found.pop(0) if len(found) > 1 else found[0]
        if found is not None:
            return found
        return self.readyz_answer if path.split("?")[0] == "/readyz" else (404, "not found")

    def list_nodes(self) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy(self.nodes)

    def list_pods(self) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy(self.pods)

    def list_pdbs(self) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy(self.pdbs)

    def metrics(self) -> str:
        self._reach()
        return self.metrics_text

    def get_node(self, name: str) -> dict[str, Any] | None:
        self._reach()
        node = next((n for n in self.nodes if n["metadata"]["name"] == name), None)
        return copy.deepcopy(node) if node is not None else None

    def list_control_plane_pods(self) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy([p for p in self.pods if p["metadata"].get("namespace") == "kube-system"
                              and (p["metadata"].get("labels") or {}).get("tier") == "control-plane"])

    def list_node_pods(self, node: str) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy([p for p in self.pods if (p.get("spec") or {}).get("nodeName") == node])

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self._reach()
        for i, node in enumerate(self.nodes):
            if node["metadata"]["name"] == name:
                self.nodes[i] = merge_patch(node, patch)
                return copy.deepcopy(self.nodes[i])
        raise errors.NodeNotFoundError(f"no node {name!r}")

    def evict_pod(self, namespace: str, name: str) -> tuple[int, str]:
        self._reach()
        pod = self._pod(namespace, name)
        if pod is None:
            return 404, f'pods "{name}" not found'
        left = self._refusals.get((namespace, name), 0)
        if left > 0:
            self._refusals[(namespace, name)] = left - 1
            return 429, "Cannot evict pod as it would violate the pod's disruption budget."
        refused = budget_refusal(pod, self.pdbs, self.pods)
        if refused is not None:
            return refused
        self._take_away(pod)
        if self.on_evicted is not None:
            self.on_evicted(copy.deepcopy(pod))
        return 201, ""

    def _take_away(self, pod: dict[str, Any]) -> None:
        """Gone now, or after ``terminating_seconds`` with a deletionTimestamp (what a kubelet takes to stop it)."""
        if self.clock is None or self.terminating_seconds <= 0:
            self.pods.remove(pod)
            return
        pod["metadata"].setdefault("deletionTimestamp", self.clock.now().isoformat())
        self.after(self.terminating_seconds, lambda: self.pods.remove(pod) if pod in self.pods else None)

    def delete_pod(self, namespace: str, name: str, *, grace_seconds: int = 0) -> bool:
        self._reach()
        pod = self._pod(namespace, name)
        if pod is None:
            return False
        self.pods.remove(pod)
        return True

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        if self._unreachable is not None:
            raise errors.ClusterUnreachableError(self._unreachable)
        data = self.configmaps.get((namespace, name))
        return dict(data) if data is not None else None

    def server_version(self) -> dict[str, Any]:
        self._reach()
        if self.version_info is not None:
            return dict(self.version_info)
        versions = [n.get("components", {}).get("apiserver") for n in (self._inventory or {}).get("nodes", [])
                    if n.get("control_plane") and n.get("components")]
        git = str(min(versions)) if versions else "v0.0.0"
        major, minor = git.lstrip("v").split(".")[:2]
        return {"major": major, "minor": minor, "gitVersion": git}

    def patch_configmap(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        self._reach()
        found = self.configmaps.get((namespace, name))
        if found is None:
            raise errors.ClusterUnreachableError(f"configmaps {name!r} not found")
        found.update(data)


def _api_nodes(inventory: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Node objects as the API shows them, for the nodes of an inventory document."""
    nodes = []
    for n in (inventory or {}).get("nodes") or []:
        labels = {"kubernetes.io/hostname": n["name"]}
        if n.get("control_plane"):
            labels["node-role.kubernetes.io/control-plane"] = ""
        nodes.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n["name"], "labels": labels},
                      "spec": {"unschedulable": True} if n.get("unschedulable") else {},
                      "status": {"conditions": [{"type": "Ready", "status": "True" if n.get("ready") else "False"}],
                                 "nodeInfo": {"kubeletVersion": n.get("kubelet")}}})
    return nodes
