"""The container images a sandbox node has: what its ``ctr -n k8s.io images ls`` and ``crictl images`` list.

A real kubeadm node keeps every image its kubelet ran and every image pulled into containerd's
``k8s.io`` namespace (``kubeadm config images pull``, ``ctr images pull``) until the kubelet's image
garbage collection frees disk. The sandbox has no containerd, so a node's images are derived from
what such a node would have run or pulled:

- the image of every static pod manifest in ``/etc/kubernetes/manifests``;
- the images of kubeadm's manifest backups under ``/etc/kubernetes/tmp`` (kubeadm never cleans
  them up, so they record what the node ran before each upgrade: the old etcd image stays, as on a
  real node whose disk never came under pressure);
- the pause image the kubelet's ``kubeadm-flags.env`` names;
- every image pulled on the node (:func:`record_pulled`, kept in :data:`PULLED`).

Only images the sandbox can describe can be pulled (:func:`pullable`): releases it knows and the
etcd, CoreDNS and pause tags of kubeadm's tables, as a registry answers "not found" for the rest.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError, NodePathError
from upgrader.files import atomic_write
from upgrader.inputs import read_regular
from upgrader.node_layout import NodeLayout
from upgrader.sandbox import releases
from upgrader.sandbox.node import manifests

PULLED = "/var/lib/containerd-sim/pulled.json"
MANIFESTS = "/etc/kubernetes/manifests"
BACKUPS = "/etc/kubernetes/tmp"
KUBELET_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
KUBE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
MAX_STATE = 1024 * 1024


def present(layout: NodeLayout) -> list[str]:
    """Every image reference the node has, sorted (``registry.k8s.io/etcd:3.5.24-0``...)."""
    refs: set[str] = set(_pulled(layout))
    for directory in _manifest_dirs(layout):
        for path in sorted(directory.glob("*.yaml")):
            pod = manifests.load(path)
            if pod is not None:
                try:
                    refs.add(str(manifests.container(pod)["image"]))
                except (KeyError, IndexError, TypeError):
                    continue
    pause = _pause_image(layout)
    if pause:
        refs.add(pause)
    return sorted(refs)


def _manifest_dirs(layout: NodeLayout) -> list[Path]:
    dirs: list[Path] = []
    try:
        dirs.append(layout.host_path(MANIFESTS))
        backups = layout.host_path(BACKUPS)
        dirs += sorted(backups.glob("kubeadm-backup-manifests-*"))
    except NodePathError:
        pass
    return [d for d in dirs if d.is_dir() and not d.is_symlink()]


def _pause_image(layout: NodeLayout) -> str | None:
    try:
        text = read_regular(layout.host_path(KUBELET_FLAGS), limit=MAX_STATE).decode(errors="replace")
    except (OSError, NodePathError):
        return None
    match = re.search(r"--pod-infra-container-image=(\S+?)\"?(\s|$)", text)
    return match.group(1) if match else None


def _pulled(layout: NodeLayout) -> list[str]:
    try:
        data = json.loads(read_regular(layout.host_path(PULLED), limit=MAX_STATE))
    except (OSError, ValueError, NodePathError):
        return []
    return [str(r) for r in data] if isinstance(data, list) else []


def record_pulled(layout: NodeLayout, refs: list[str]) -> None:
    """Remember images pulled on the node (``ctr images pull``; kubeadm's ``config images pull`` may call
    this too so that both agree)."""
    merged = sorted(set(_pulled(layout)) | set(refs))
    atomic_write(layout.host_path(PULLED), json.dumps(merged, indent=1).encode())


def split(ref: str) -> tuple[str, str]:
    """``registry.k8s.io/etcd:3.5.24-0`` -> (``registry.k8s.io/etcd``, ``3.5.24-0``); no tag: ``latest``."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


def component(ref: str) -> str | None:
    """``etcd``, ``kube-apiserver``... for a registry.k8s.io image, else None."""
    name, _ = split(ref)
    prefix = releases.REGISTRY + "/"
    return name[len(prefix):] if name.startswith(prefix) else None


def pullable(ref: str) -> bool:
    """Whether the registry has this image, as far as the sandbox knows."""
    comp, (_, tag) = component(ref), split(ref)
    if comp == "etcd":
        return any(tag == t for tags in releases.ETCD_TAGS.values() for _, t in tags)
    if comp in KUBE_COMPONENTS:
        try:
            return releases.is_released(Version.parse(tag)) and tag.startswith("v")
        except InvalidVersionError:
            return False
    if comp == "coredns/coredns":
        return tag in releases.COREDNS.values()
    if comp == "pause":
        return tag in releases.PAUSE.values() or tag == "3.9"
    return False


def digest(ref: str) -> str:
    """A stable stand-in for the image's digest (``sha256:...``)."""
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
