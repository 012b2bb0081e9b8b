"""Per-node machine state that the simulated tools share, kept as small JSON files in the node root.

The simulated apt/dpkg, systemd and kubelet talk to each other only through these files, the way
the real ones talk through /var/lib/dpkg and systemd's unit state, so each can be a separate
short-lived process and any of them can crash without losing state.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

from upgrader.errors import NodePathError
from upgrader.files import atomic_write
from upgrader.inputs import read_regular
from upgrader.ports import NodeLayout

PACKAGES = "/var/lib/dpkg-sim/packages.json"
APT_LISTS = "/var/lib/apt/lists/sandbox-pkgs.k8s.io.json"
SOURCES = "/etc/apt/sources.list.d/kubernetes.list"
KUBELET_UNIT = "/var/lib/systemd-sim/kubelet.json"  # what systemctl asked for
KUBELET_STATUS = "/run/kubelet-sim/status.json"  # what the running kubelet reports
CERTS = "/etc/kubernetes/pki/.sandbox-certs.json"
K8S_PACKAGES = ("kubeadm", "kubelet", "kubectl")
MAX_STATE = 4 * 1024 * 1024  # the simulated machine's state files are a few KB


def _read(layout: NodeLayout, path: str, default: dict[str, Any]) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], json.loads(read_regular(layout.host_path(path), limit=MAX_STATE)))
    except (OSError, ValueError, NodePathError):  # a FIFO, a device, a huge file, a link out: missing
        return default


def _write(layout: NodeLayout, path: str, data: dict[str, Any]) -> None:
    atomic_write(layout.host_path(path), json.dumps(data, indent=1, sort_keys=True).encode())


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: str  # Debian version, e.g. 1.31.4-1.1
    hold: bool


def packages(layout: NodeLayout) -> dict[str, Package]:
    raw = _read(layout, PACKAGES, {})
    return {n: Package(n, p["version"], bool(p.get("hold"))) for n, p in raw.items()}


def save_packages(layout: NodeLayout, pkgs: dict[str, Package]) -> None:
    _write(layout, PACKAGES, {p.name: {"version": p.version, "hold": p.hold} for p in pkgs.values()})


def repo_line(minor: str) -> str:
    return (f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
            f"https://pkgs.k8s.io/core:/stable:/{minor}/deb/ /\n")


def apt_lists(layout: NodeLayout) -> dict[str, Any]:
    """What the last `apt-get update` fetched: {"minor": "v1.31"} or {}."""
    return _read(layout, APT_LISTS, {})


def save_apt_lists(layout: NodeLayout, minor: str | None) -> None:
    _write(layout, APT_LISTS, {"minor": minor} if minor else {})


def kubelet_unit(layout: NodeLayout) -> dict[str, Any]:
    """{"generation": restarts asked for, "wanted": "active"|"inactive", "unit_changed": bool}."""
    return _read(layout, KUBELET_UNIT, {"generation": 0, "wanted": "active", "unit_changed": False})


def save_kubelet_unit(layout: NodeLayout, unit: dict[str, Any]) -> None:
    _write(layout, KUBELET_UNIT, unit)


def kubelet_status(layout: NodeLayout) -> dict[str, Any]:
    """{"generation", "state": "active"|"activating"|"inactive", "version", "heartbeat"}."""
    return _read(layout, KUBELET_STATUS, {})


def save_kubelet_status(layout: NodeLayout, status: dict[str, Any]) -> None:
    _write(layout, KUBELET_STATUS, {**status, "heartbeat": time.time()})


def certs(layout: NodeLayout) -> dict[str, Any]:
    """{"issued": epoch seconds, "ca_issued": epoch seconds}."""
    return _read(layout, CERTS, {})


def save_certs(layout: NodeLayout, data: dict[str, Any]) -> None:
    _write(layout, CERTS, data)


def read_text(layout: NodeLayout, path: str) -> str:
    try:
        return read_regular(layout.host_path(path), limit=MAX_STATE).decode(errors="replace")
    except (OSError, NodePathError):
        return ""


def node_is_control_plane(layout: NodeLayout) -> bool:
    """As kubeadm decides it: the node has a kube-apiserver static pod manifest."""
    return layout.host_path("/etc/kubernetes/manifests/kube-apiserver.yaml").exists()
