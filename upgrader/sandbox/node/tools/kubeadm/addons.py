"""kubeadm's addon phase: CoreDNS and kube-proxy follow the control plane, once all of it has moved.

Since v1.28 kubeadm upgrades the addons only when every control-plane node runs the new
kube-apiserver (postupgrade.go): on `upgrade apply` of a single control plane, else on the
`upgrade node` of the last one. The addon's workload is pointed at the new image; its controller
then rolls the pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from upgrader.domain.versions import Version
from upgrader.sandbox import releases
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.node.tools.kubeadm.cluster import Fatal, cluster_configuration


@dataclass(frozen=True, slots=True)
class Addon:
    label: str  # as kubeadm prints it
    kind: str
    path: str
    container: str
    what: str  # for the "not deployed" warning

    def image(self, target: Version, conf: dict[str, Any]) -> str:
        if self.label == "CoreDNS":
            dns = conf.get("dns") or {}
            repo = dns.get("imageRepository") or f"{conf.get('imageRepository') or releases.REGISTRY}/coredns"
            return f"{repo}/coredns:{dns.get('imageTag') or releases.coredns_tag(target)}"
        return f"{conf.get('imageRepository') or releases.REGISTRY}/kube-proxy:{target}"


ADDONS = (
    Addon("CoreDNS", "Deployment", "/apis/apps/v1/namespaces/kube-system/deployments/coredns", "coredns",
          "a DNS server"),
    Addon("kube-proxy", "DaemonSet", "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", "kube-proxy",
          "kube-proxy"),
)


def _unupgraded_control_planes(node: Node, api: KubeClient) -> list[str] | None:
    """Control-plane nodes whose kube-apiserver image differs from this node's (postupgrade.go
    UnupgradedControlPlaneInstances); None when that cannot be told."""
    try:
        pods = api.get("/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver")["items"]
    except (ApiError, KeyError):
        pods = []
    images = {p["spec"].get("nodeName", ""): c.get("image") for p in pods for c in p["spec"].get("containers", [])
              if c.get("name") == "kube-apiserver"}
    if node.name not in images:
        # kubeadm fails the addon phase here; the sandbox only warns (its API always has the mirror pods)
        node.warn("[upgrade/addons] skip upgrade addons: failed to determine whether all the control plane "
                  f"instances have been upgraded: cannot find kube-apiserver image for current control plane "
                  f"instance {node.name}")
        return None
    return sorted(n for n, image in images.items() if image != images[node.name])


def upgrade_addons(node: Node, api: KubeClient, target: Version) -> None:
    behind = _unupgraded_control_planes(node, api)
    if behind is None:
        return
    if behind:
        node.say(f"[upgrade/addons] skip upgrade addons because control plane instances [{' '.join(behind)}] "
                 "have not been upgraded")
        return
    conf = cluster_configuration(api)
    for addon in ADDONS:
        _ensure_addon(node, api, addon, addon.image(target, conf))


def _ensure_addon(node: Node, api: KubeClient, addon: Addon, image: str) -> None:
    """Point the addon's workload at ``image``; its controller then rolls the pods."""
    for _ in range(5):
        try:
            obj = api.get(addon.path)
        except ApiError as e:
            if e.status != 404:
                raise Fatal(f"[upgrade/addons] FATAL: failed to get the {addon.label} {addon.kind}: {e}") from e
            node.warn(f'W1210 10:00:00.000000    1234 addons.go:130] the {addon.kind} "{addon.path.rsplit("/", 1)[1]}"'
                      f' in the namespace "kube-system" was not found. Assuming that {addon.what} was not deployed '
                      "for this cluster. Note that once 'kubeadm upgrade apply' supports phases you will have to "
                      f"skip the {addon.label} upgrade manually")
            return
        containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
        mine = [c for c in containers if c.get("name") == addon.container]
        if not mine:
            raise Fatal(f'[upgrade/addons] FATAL: the {addon.kind} "{obj.get("metadata", {}).get("name")}" has no '
                        f'container "{addon.container}"')
        for c in mine:
            c["image"] = image
        try:
            api.request("PUT", addon.path, obj)
        except ApiError as e:
            if e.status == 409:
                continue
            raise Fatal(f"[upgrade/addons] FATAL: failed to update the {addon.label} {addon.kind}: {e}") from e
        node.say(f"[addons] Applied essential addon: {addon.label}")
        return
    raise Fatal(f"[upgrade/addons] FATAL: failed to update the {addon.label} {addon.kind}: the object has been "
                "modified; please apply your changes to the latest version and try again")
