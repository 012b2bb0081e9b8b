"""What kubeadm reads before it changes anything, and how its phases fail.

A client from the node's kubeconfig (admin.conf on a control-plane node, kubelet.conf on a worker),
the ClusterConfiguration in the ``kubeadm-config`` ConfigMap, and the Nodes; every failure is a
:class:`Fatal`, printed as kubeadm prints it.
"""

from __future__ import annotations

from typing import Any

import yaml

from upgrader.domain.versions import Version
from upgrader.sandbox.kubeclient import ApiError, KubeClient, server_from_kubeconfig
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.sandbox_config import SandboxConfig

STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"
CM_PATH = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
CP_LABEL = "node-role.kubernetes.io/control-plane"


class Fatal(Exception):
    """Printed on stderr, exit 1: as is by a kubeadm whose command has no phases, and as
    ``error execution phase PHASE: MODERN`` by one whose command runs as a phase workflow
    (``upgrade node`` always, ``upgrade apply`` from v1.32 on: k/k PR #126032).

    ``modern`` is the error without the old ``[upgrade/...] FATAL:`` label (defaults to the message);
    ``phase`` is None for errors raised before any phase runs (flags, the client, the config).
    """

    def __init__(self, message: str, *, phase: str | None = None, modern: str | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.modern = message if modern is None else modern

    def render(self, *, phased: bool) -> str:
        if not phased:
            return str(self)
        return f"error execution phase {self.phase}: {self.modern}" if self.phase else self.modern


def client(node: Node, conf: str) -> KubeClient:
    path = node.layout.host_path(conf)
    if not path.exists():
        raise Fatal(f'[upgrade/config] FATAL: couldn\'t create a Kubernetes client from file "{conf}": failed to '
                    f"load admin kubeconfig: open {conf}: no such file or directory")
    return KubeClient(server_from_kubeconfig(path), timeout=5)


def sandbox_config(node: Node) -> SandboxConfig:
    if node.sandbox_dir is None:
        raise Fatal("[upgrade] FATAL: not a sandbox node (UPGRADER_SANDBOX_DIR unset)")
    return SandboxConfig.load(node.sandbox_dir)


def cluster_configuration(api: KubeClient) -> dict[str, Any]:
    try:
        cm = api.get(CM_PATH)
    except ApiError as e:
        raise Fatal(f"[upgrade/config] FATAL: failed to get config map: {e}") from e
    return yaml.safe_load(cm.get("data", {}).get("ClusterConfiguration", "")) or {}


def nodes(api: KubeClient) -> list[dict[str, Any]]:
    try:
        return list(api.get("/api/v1/nodes").get("items", []))
    except ApiError as e:
        raise Fatal(f"[upgrade/health] FATAL: couldn't list nodes: {e}") from e


def is_ready(n: dict[str, Any]) -> bool:
    conds = n.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def kubelet_version(n: dict[str, Any]) -> Version:
    return Version.parse(n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "v0.0.0"))


