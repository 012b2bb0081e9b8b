"""The simulated kubelet reads each static pod manifest once per pass, so a pod is never paired with
the config hash of another version of its file (kubeadm replaces manifests at any moment)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import yaml

from upgrader.ports import NodeLayout
from upgrader.sandbox.node.static_pods import StaticPodRunner


def _manifest(tag: str) -> bytes:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
           "spec": {"containers": [{"name": "kube-controller-manager",
                                    "image": f"registry.k8s.io/kube-controller-manager:{tag}"}]}}
    return yaml.safe_dump(pod).encode()


def test_a_manifest_replaced_while_it_is_read_never_pairs_a_pod_with_another_hash(tmp_path: Path) -> None:
    root = tmp_path / "nodes" / "cp-1"
    manifests = root / "etc" / "kubernetes" / "manifests"
    manifests.mkdir(parents=True)
    versions = {hashlib.md5(_manifest(tag)).hexdigest(): tag for tag in ("v1.30.6", "v1.31.4")}
    contents = [_manifest("v1.30.6"), _manifest("v1.31.4")]
    target = manifests / "kube-controller-manager.yaml"
    target.write_bytes(contents[0])
    stop = threading.Event()

    def kubeadm() -> None:  # replaces the manifest as kubeadm does: a new file renamed over the old
        i = 0
        while not stop.is_set():
            i += 1
            tmp = manifests / ".kcm.tmp"
            tmp.write_bytes(contents[i % 2])
            os.replace(tmp, target)

    runner = StaticPodRunner(node="cp-1", layout=NodeLayout(root), sandbox_dir=tmp_path)
    writer = threading.Thread(target=kubeadm, daemon=True)
    writer.start()
    mismatched, passes = [], 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            runner.sync()
            passes += 1
            sp = runner.pods.get("kube-controller-manager")
            if sp is not None and versions.get(sp.hash) != sp.tag:
                mismatched.append((sp.hash, sp.tag))
    finally:
        stop.set()
        writer.join(timeout=5)
    assert passes > 100
    assert mismatched == []
