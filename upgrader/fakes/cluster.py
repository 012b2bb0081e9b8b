"""A cluster API that answers with given documents, or as unreachable."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from upgrader import errors


class FakeClusterApi:
    """A cluster API that answers with a fixed inventory document, or as unreachable.

    The preflight reads answer what was given: ``nodes`` (API JSON; derived from the inventory when
    not given), ``pods``, ``pdbs``, ``readyz`` (status, body) and ``metrics`` (Prometheus text);
    ``configmaps`` maps (namespace, name) to a ConfigMap's data.
    """

    def __init__(self, inventory: Mapping[str, Any] | None = None, *, unreachable: str | None = None,
                 nodes: Sequence[Mapping[str, Any]] | None = None, pods: Sequence[Mapping[str, Any]] = (),
                 pdbs: Sequence[Mapping[str, Any]] = (), readyz: tuple[int, str] = (200, "readyz check passed\n"),
                 metrics: str = "", configmaps: Mapping[tuple[str, str], Mapping[str, str]] | None = None) -> None:
        self._inventory = copy.deepcopy(dict(inventory)) if inventory is not None else None
        self._unreachable = unreachable
        self.configmaps = {key: dict(data) for key, data in (configmaps or {}).items()}  # (namespace, name) -> data
        self.calls = 0
        self.nodes = [copy.deepcopy(dict(n)) for n in nodes] if nodes is not None else _api_nodes(self._inventory)
        self.pods = [copy.deepcopy(dict(p)) for p in pods]
        self.pdbs = [copy.deepcopy(dict(p)) for p in pdbs]
        self.readyz_answer = readyz
        self.metrics_text = metrics

    def observe_inventory(self) -> dict[str, Any]:
        self.calls += 1
        if self._unreachable is not None or self._inventory is None:
            raise errors.ClusterUnreachableError(self._unreachable or "cluster unreachable")
        return copy.deepcopy(self._inventory)

    def _reach(self) -> None:
        if self._unreachable is not None:
            raise errors.ClusterUnreachableError(self._unreachable)

    def readyz(self) -> tuple[int, str]:
        self._reach()
        return self.readyz_answer

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

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        if self._unreachable is not None:
            raise errors.ClusterUnreachableError(self._unreachable)
        data = self.configmaps.get((namespace, name))
        return dict(data) if data is not None else None


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
