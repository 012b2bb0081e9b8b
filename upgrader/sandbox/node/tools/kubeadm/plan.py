"""``kubeadm upgrade plan`` output: what `apply` would change, per component and node.

Offline like the sandbox, kubeadm cannot fetch dl.k8s.io/release/stable.txt and falls back to its
own version as the newest stable one; so does this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError
from upgrader.sandbox import releases
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.node import manifests
from upgrader.sandbox.node.tools import Node

RULE = "_" * 69
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _table(node: Node, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) + 3 for i in range(len(header))]
    for row in [header, *rows]:
        node.say("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _mirror_versions(api: KubeClient, component: str) -> list[tuple[str, str]]:
    try:
        pods = api.get(f"/api/v1/namespaces/kube-system/pods?labelSelector=component%3D{component}")["items"]
    except (ApiError, KeyError):
        return []
    out = []
    for pod in pods:
        out.append((pod["spec"].get("nodeName", ""), manifests.image_tag(pod)))
    return sorted(out)


def _addon_tag(api: KubeClient, what: str) -> str | None:
    """The image tag the addon's workload runs now (kubeadm reads it from the cluster too)."""
    try:
        obj = api.get(f"/apis/apps/v1/namespaces/kube-system/{what}")
        image = str(obj["spec"]["template"]["spec"]["containers"][0]["image"])
    except (ApiError, KeyError, IndexError, TypeError):
        return None
    return image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None


def print_plan(node: Node, api: KubeClient, kubeadm: Version, nodes: list[dict[str, Any]]) -> int:
    try:
        cluster = Version.parse(api.git_version())
    except (ApiError, InvalidVersionError) as e:
        node.warn(f"[upgrade/versions] FATAL: Couldn't fetch cluster version from the API Server: {e}")
        return 1
    node.say("[upgrade] Fetching available versions to upgrade to")
    node.say(f"[upgrade/versions] Cluster version: {cluster}\n[upgrade/versions] kubeadm version: {kubeadm}")
    node.warn('W1210 10:00:00.000000    1234 version.go:104] could not fetch a Kubernetes version from the internet: '
              'unable to get URL "https://dl.k8s.io/release/stable-1.txt"')
    node.warn(f"W1210 10:00:00.000000    1234 version.go:105] falling back to the local client version: {kubeadm}")
    node.say(f"[upgrade/versions] Target version: {kubeadm}")
    node.say(f"[upgrade/versions] Latest version in the {cluster.line} series: {cluster}\n")
    if kubeadm <= cluster:
        node.say("Awesome, you're up-to-date! Enjoy!")
        return 0
    target = kubeadm
    node.say("Components that must be upgraded manually after you have upgraded the control plane with "
             "'kubeadm upgrade apply':")
    kubelets = [("kubelet", n["metadata"]["name"], n["status"]["nodeInfo"]["kubeletVersion"], str(target))
                for n in nodes]
    _table(node, ("COMPONENT", "NODE", "CURRENT", "TARGET"), kubelets)
    node.say("\nUpgrade to the latest stable version:\n")
    rows: list[tuple[str, ...]] = []
    for component in COMPONENTS:
        rows += [(component, n, v, str(target)) for n, v in _mirror_versions(api, component)]
    proxy = _addon_tag(api, "daemonsets/kube-proxy") or str(cluster)
    rows += [("kube-proxy", "", proxy.lstrip("v"), str(target)),
             ("CoreDNS", "", _addon_tag(api, "deployments/coredns") or releases.coredns_tag(cluster),
              releases.coredns_tag(target))]
    rows += [("etcd", n, v, releases.etcd_tag(target)) for n, v in _mirror_versions(api, "etcd")]
    _table(node, ("COMPONENT", "NODE", "CURRENT", "TARGET"), rows)
    node.say("\nYou can now apply the upgrade by executing the following command:\n\n"
             f"\tkubeadm upgrade apply {target}\n")
    node.say(RULE)
    return 0
