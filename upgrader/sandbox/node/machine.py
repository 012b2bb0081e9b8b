"""Per-node machine state that the simulated tools share, kept as small JSON files in the node root.

The simulated package managers, systemd and kubelet talk to each other only through these files,
the way the real ones talk through /var/lib/dpkg (or the rpm database) and systemd's unit state, so
each can be a separate short-lived process and any of them can crash without losing state.

One package database serves both package managers: apt/dpkg on a Debian node and dnf/rpm on a RHEL
node (see :mod:`.distros`) install into it, and kubeadm and the kubelet read their version from it
whichever wrote it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

from upgrader.errors import NodePathError
from upgrader.files import atomic_write
from upgrader.inputs import read_regular
from upgrader.node_layout import NodeLayout

PACKAGES = "/var/lib/dpkg-sim/packages.json"  # both package managers' (the name predates dnf)
APT_LISTS = "/var/lib/apt/lists/sandbox-pkgs.k8s.io.json"
SOURCES = "/etc/apt/sources.list.d/kubernetes.list"
YUM_REPOS = "/etc/yum.repos.d"
YUM_REPO = "/etc/yum.repos.d/kubernetes.repo"
DNF_CACHE = "/var/cache/dnf/sandbox-pkgs.k8s.io.json"  # which repository URLs dnf has metadata of, and since when
KUBELET_UNIT = "/var/lib/systemd-sim/kubelet.json"  # what systemctl asked for
KUBELET_STATUS = "/run/kubelet-sim/status.json"  # what the running kubelet reports
CERTS = "/etc/kubernetes/pki/.sandbox-certs.json"
RUNNING_PODS = "/run/kubelet-sim/pods.json"
JOURNAL = "/var/log/journal-sim/kubelet.jsonl"  # the kubelet unit's journal (what `journalctl -u kubelet` shows)
JOURNAL_KEEP = 400  # the static pods the kubelet runs, as crictl would list them
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
    version: str  # in the node's package manager's spelling: 1.31.4-1.1 (deb) or 1.31.4-150500.1.1 (rpm)
    hold: bool  # apt-mark hold (dnf has none: the repository's exclude= line keeps the packages)


def packages(layout: NodeLayout) -> dict[str, Package]:
    raw = _read(layout, PACKAGES, {})
    return {n: Package(n, p["version"], bool(p.get("hold"))) for n, p in raw.items()}


def save_packages(layout: NodeLayout, pkgs: dict[str, Package]) -> None:
    _write(layout, PACKAGES, {p.name: {"version": p.version, "hold": p.hold} for p in pkgs.values()})


def repo_line(minor: str) -> str:
    return (f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
            f"https://pkgs.k8s.io/core:/stable:/{minor}/deb/ /\n")


def yum_repo(minor: str) -> str:
    """kubernetes.repo as the kubernetes.io install page writes it for a minor (e.g. v1.31)."""
    url = f"https://pkgs.k8s.io/core:/stable:/{minor}/rpm/"
    return (f"[kubernetes]\nname=Kubernetes\nbaseurl={url}\nenabled=1\ngpgcheck=1\n"
            f"gpgkey={url}repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")


def dnf_cache(layout: NodeLayout) -> dict[str, float]:
    """Repository URL -> when dnf last fetched its metadata (epoch seconds)."""
    return {str(k): float(v) for k, v in _read(layout, DNF_CACHE, {}).items()}


def save_dnf_cache(layout: NodeLayout, cache: dict[str, float]) -> None:
    _write(layout, DNF_CACHE, dict(cache))


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


def running_pods(layout: NodeLayout) -> dict[str, Any] | None:
    """component -> {"image", "started": epoch seconds} of the static pods the node's kubelet runs now;
    None when no kubelet has run on this node (a node root made without a supervisor)."""
    found = _read(layout, RUNNING_PODS, {"absent": True})
    return None if found.get("absent") is True else found


def save_running_pods(layout: NodeLayout, pods: dict[str, Any]) -> None:
    _write(layout, RUNNING_PODS, pods)


def read_text(layout: NodeLayout, path: str) -> str:
    try:
        return read_regular(layout.host_path(path), limit=MAX_STATE).decode(errors="replace")
    except (OSError, NodePathError):
        return ""


def node_is_control_plane(layout: NodeLayout) -> bool:
    """As kubeadm decides it: the node has a kube-apiserver static pod manifest."""
    return layout.host_path("/etc/kubernetes/manifests/kube-apiserver.yaml").exists()


def journal(layout: NodeLayout, ident: str, message: str) -> None:
    """Append one entry to the kubelet unit's journal (the newest JOURNAL_KEEP are kept)."""
    path = layout.host_path(JOURNAL)
    lines = read_text(layout, JOURNAL).splitlines()[-(JOURNAL_KEEP - 1):]
    lines.append(json.dumps({"ts": time.time(), "ident": ident, "msg": message}))
    atomic_write(path, ("\n".join(lines) + "\n").encode())


def journal_entries(layout: NodeLayout) -> list[dict[str, Any]]:
    found = []
    for line in read_text(layout, JOURNAL).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            found.append(entry)
    return found
