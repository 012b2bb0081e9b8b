"""The faults that are a state of a node's files, made once (see ``faults.STATE_KINDS``).

- ``apiserver-crashloop:NODE``: as if `kubeadm upgrade` wrote NODE a kube-apiserver manifest carrying a
  flag its version removed (an old ``extraArgs`` entry) and its own rollback did not happen: the good
  manifest is in a fresh ``/etc/kubernetes/tmp/kubeadm-backup-manifests-<date>-<time>/`` and the one in
  ``manifests/`` makes the API server exit at every start, which the kubelet restarts with back-off.
- ``etcd-member-data-lost:NODE``: NODE's kubelet stops its etcd member and empties its data dir (the
  request is carried out by the supervisor's kubelet, which owns the process; this waits for it).
- ``kubelet-flag-removed:NODE``: a flag the installed kubelet's minor removed is added to
  /var/lib/kubelet/kubeadm-flags.env and the kubelet restarted, as after a package upgrade: it exits at
  every start, systemd restarts it, the node goes NotReady.
"""

from __future__ import annotations

import time
from pathlib import Path

from upgrader.domain.versions import Version
from upgrader.files import atomic_write
from upgrader.ports import NodeLayout
from upgrader.sandbox import faults, releases
from upgrader.sandbox.node import machine, manifests, removed_flags
from upgrader.sandbox.sandbox_config import SandboxConfig

REQUEST_WAIT = 30.0


class StateFaultError(Exception):
    """The state fault cannot be made on this node; the message says why."""


def apply(cfg: SandboxConfig, fault: faults.Fault) -> None:
    assert fault.node is not None
    if fault.kind == "kubelet-flag-removed":
        return _kubelet_flag(NodeLayout(cfg.node_root(fault.node)))
    if fault.node not in cfg.control_planes:
        raise StateFaultError(f"{fault.kind} needs a control-plane node; {fault.node} is a worker")
    if fault.kind == "apiserver-crashloop":
        return _apiserver_flag(NodeLayout(cfg.node_root(fault.node)))
    if len(cfg.control_planes) < 3:
        raise StateFaultError(f"{fault.kind} needs 3 control planes or more, so the other members keep quorum "
                              f"(sandbox {cfg.name} has {len(cfg.control_planes)})")
    return _wait_taken(faults.request(cfg.dir, fault), fault)


def _apiserver_flag(layout: NodeLayout) -> None:
    path = layout.host_path("/etc/kubernetes/manifests/kube-apiserver.yaml")
    pod = manifests.load(path)
    if pod is None:
        raise StateFaultError("the node has no kube-apiserver manifest")
    good = path.read_bytes()
    version = Version.parse(manifests.image_tag(pod))
    flag = removed_flags.fault_flag(removed_flags.APISERVER, version)
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
    backup = layout.host_path(f"/etc/kubernetes/tmp/kubeadm-backup-manifests-{stamp}/kube-apiserver.yaml")
    atomic_write(backup, good, 0o600)
    container = manifests.container(pod)
    binary, *flags = container["command"]
    merged = [f for f in flags if f.partition("=")[0] != flag.partition("=")[0]] + [flag]
    container["command"] = [binary, *sorted(merged, key=lambda f: f[2:].partition("=")[0])]  # kubeadm sorts them
    atomic_write(path, manifests.dump(pod).encode(), 0o600)


def _kubelet_flag(layout: NodeLayout) -> None:
    pkg = machine.packages(layout).get("kubelet")
    if pkg is None:
        raise StateFaultError("the node has no kubelet package")
    flag = removed_flags.fault_flag(removed_flags.KUBELET, releases.parse_package(pkg.version))
    text = machine.read_text(layout, removed_flags.KUBELET_FLAGS)
    atomic_write(layout.host_path(removed_flags.KUBELET_FLAGS), removed_flags.add_env_flag(text, flag).encode())
    unit = machine.kubelet_unit(layout)
    machine.save_kubelet_unit(layout, {**unit, "generation": int(unit.get("generation", 0)) + 1, "wanted": "active"})


def _wait_taken(request: Path, fault: faults.Fault) -> None:
    deadline = time.monotonic() + REQUEST_WAIT
    while request.exists():
        if time.monotonic() > deadline:
            request.unlink(missing_ok=True)
            raise StateFaultError(f"the kubelet of {fault.node} did not carry out {fault.kind} within "
                                  f"{REQUEST_WAIT:g}s (is its etcd manifest there?)")
        time.sleep(0.1)
