"""``kubeadm upgrade plan|apply|node`` on a sandbox node, following DOMAIN.md's procedure.

apply: health checks (API, control-plane nodes Ready, manifests), version policy, static pod upgrade
of this node, then the kubeadm-config ConfigMap (kubernetesVersion, in kubeadm's own config API),
the kubelet config and the addons.
node: the same static pod upgrade to the version recorded in kubeadm-config (control-plane nodes),
the kubelet config (every node) and the addons (control-plane nodes).
The CoreDNS and kube-proxy addons move only once every control-plane node runs the new
kube-apiserver (kubeadm since v1.28): on `apply` of a single control plane, else on the
`upgrade node` of the last one.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any

import yaml

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError
from upgrader.sandbox import kubeadm_policy, manifests, noderoot, nodestate, releases
from upgrader.sandbox.config import SandboxConfig
from upgrader.sandbox.kubeapi import ApiError, KubeApi, server_from_kubeconfig
from upgrader.sandbox.nodecmd import Node
from upgrader.sandbox.nodecmd.kubeadm import installed_version, migrate_cluster_configuration, option
from upgrader.sandbox.nodecmd.staticpods import StaticPodUpgrade, UpgradeFailed, go_duration

STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"
CM_PATH = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
CP_LABEL = "node-role.kubernetes.io/control-plane"


class Fatal(Exception):
    """Printed as is on stderr, exit 1."""


def main(node: Node, verb: str, args: list[str]) -> int:
    try:
        if verb == "plan":
            return plan(node, args)
        if verb == "apply":
            return apply(node, args)
        return upgrade_node(node, args)
    except Fatal as e:
        node.warn(f"{e}\n{STACK_HINT}")
        return 1


def _client(node: Node, conf: str) -> KubeApi:
    path = node.layout.host_path(conf)
    if not path.exists():
        raise Fatal(f'[upgrade/config] FATAL: couldn\'t create a Kubernetes client from file "{conf}": failed to '
                    f"load admin kubeconfig: open {conf}: no such file or directory")
    return KubeApi(server_from_kubeconfig(path), timeout=5)


def _sandbox(node: Node) -> SandboxConfig:
    if node.sandbox_dir is None:
        raise Fatal("[upgrade] FATAL: not a sandbox node (UPGRADER_SANDBOX_DIR unset)")
    return SandboxConfig.load(node.sandbox_dir)


def cluster_configuration(api: KubeApi) -> dict[str, Any]:
    try:
        cm = api.get(CM_PATH)
    except ApiError as e:
        raise Fatal(f"[upgrade/config] FATAL: failed to get config map: {e}") from e
    return yaml.safe_load(cm.get("data", {}).get("ClusterConfiguration", "")) or {}


def _nodes(api: KubeApi) -> list[dict[str, Any]]:
    try:
        return list(api.get("/api/v1/nodes").get("items", []))
    except ApiError as e:
        raise Fatal(f"[upgrade/health] FATAL: couldn't list nodes: {e}") from e


def _ready(n: dict[str, Any]) -> bool:
    conds = n.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _kubelet(n: dict[str, Any]) -> Version:
    return Version.parse(n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "v0.0.0"))


def _preflight(node: Node, api: KubeApi, args: list[str]) -> None:
    ignored = set((option(args, "--ignore-preflight-errors") or "").lower().split(","))
    node.say("[upgrade/config] Reading configuration from the cluster...")
    node.say("[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
             "kubeadm-config -o yaml'")
    node.say("[preflight] Running pre-flight checks.")
    node.say("[upgrade] Running cluster health checks")
    errors: list[tuple[str, str]] = []
    if not api.ready():
        errors.append(("APIServerHealth", 'the API Server is unhealthy; /healthz didn\'t return "ok"'))
    else:
        not_ready = [n["metadata"]["name"] for n in _nodes(api)
                     if CP_LABEL in n["metadata"].get("labels", {}) and not _ready(n)]
        if not_ready:
            errors.append(("ControlPlaneNodesReady",
                           f"there are NotReady control-planes in the cluster: [{' '.join(not_ready)}]"))
    for component in manifests.COMPONENTS:
        path = f"/etc/kubernetes/manifests/{component}.yaml"
        if not node.layout.host_path(path).exists():
            errors.append(("StaticPodManifest", f"the manifest for component {component} doesn't exist: {path}"))
    fatal = [(k, m) for k, m in errors if k.lower() not in ignored and "all" not in ignored]
    for check, message in errors:
        if (check, message) not in fatal:
            node.say(f"\t[WARNING {check}]: {message}")
    if fatal:
        lines = "\n".join(f"\t[ERROR {k}]: {m}" for k, m in fatal)
        raise Fatal(f"[upgrade/health] FATAL: [preflight] Some fatal errors occurred:\n{lines}\n[preflight] If you "
                    "know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`")


def _target(args: list[str]) -> Version:
    words = [a for i, a in enumerate(args) if not a.startswith("-") and not _is_value(args, i)]
    if len(words) < 3:
        raise Fatal("[upgrade/version] FATAL: missing one or more required arguments. Required arguments: [version]")
    try:
        return Version.parse(words[2])
    except InvalidVersionError as e:
        raise Fatal(f'[upgrade/version] FATAL: Unable to parse normalized version "{words[2]}" as a semantic '
                    "version") from e


def _is_value(args: list[str], i: int) -> bool:
    return i > 0 and args[i - 1] in ("--ignore-preflight-errors", "--config", "-o", "--output")


def _policy(node: Node, api: KubeApi, *, cluster: Version, target: Version, kubeadm: Version, force: bool) -> None:
    errs = kubeadm_policy.enforce(cluster=cluster, target=target, kubeadm=kubeadm,
                                  kubelets=[_kubelet(n) for n in _nodes(api)])
    fatal = kubeadm_policy.render(errs, force=force)
    if fatal:
        raise Fatal(fatal)
    if errs.skippable:
        lines = "\n".join(f"\t- {e}" for e in errs.skippable)
        node.say(f"[upgrade/version] Found {len(errs.skippable)} potential version compatibility errors but "
                 f"skipping since the --force flag is set: \n\n{lines}")


def _confirm(node: Node, args: list[str]) -> None:
    if {"--yes", "-y"} & set(args) or "--yes=true" in args:
        return
    node.say("[upgrade] Are you sure you want to proceed? [y/N]: ")
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise Fatal("won't proceed; the user didn't answer (Y|y) in order to continue")


def apply(node: Node, args: list[str]) -> int:
    target = _target(args)
    api = _client(node, "/etc/kubernetes/admin.conf")
    cfg = _sandbox(node)
    _preflight(node, api, args)
    kubeadm = installed_version(node)
    try:
        cluster = Version.parse(api.git_version())
    except (ApiError, InvalidVersionError) as e:
        raise Fatal(f"[upgrade/versions] FATAL: Couldn't fetch cluster version from the API Server: {e}") from e
    node.say(f'[upgrade/version] You have chosen to change the cluster version to "{target}"')
    node.say(f"[upgrade/versions] Cluster version: {cluster}\n[upgrade/versions] kubeadm version: {kubeadm}")
    _policy(node, api, cluster=cluster, target=target, kubeadm=kubeadm, force="--force" in args)
    _confirm(node, args)
    node.say("[upgrade/prepull] Pulling images required for setting up a Kubernetes cluster")
    node.say("[upgrade/prepull] This might take a minute or two, depending on the speed of your internet connection")
    _static_pods(node, api, cfg, target, args, phase="apply")
    _upload_config(node, api, target, kubeadm=kubeadm)
    _kubelet_config(node, target)
    _addons(node, api, target)
    node.say(f'\n[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target}". Enjoy!\n')
    node.say("[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your "
             "kubelets if you haven't already done so.")
    return 0


def _static_pods(node: Node, api: KubeApi, cfg: SandboxConfig, target: Version, args: list[str], *, phase: str) -> None:
    timeout = cfg.timeouts.kubeadm
    etcd_upgrade = (option(args, "--etcd-upgrade") or "true").lower() != "false"
    if phase == "apply":
        node.say(f'[upgrade/apply] Upgrading your Static Pod-hosted control plane to version "{target}" '
                 f"(timeout: {go_duration(timeout)})...")
    else:
        node.say(f'[upgrade/control-plane] Upgrading your Static Pod-hosted control plane instance to version '
                 f'"{target}"...')
    try:
        StaticPodUpgrade(node, api, cfg, target, timeout, etcd_upgrade=etcd_upgrade).run()
    except UpgradeFailed as e:
        label = "[upgrade/apply]" if phase == "apply" else "[upgrade/control-plane]"
        raise Fatal(f"{label} FATAL: {e}") from e


def _upload_config(node: Node, api: KubeApi, target: Version, *, kubeadm: Version) -> None:
    node.say('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" '
             "Namespace")
    for _ in range(5):  # another writer between our read and write: read again, as a client-go retry would
        try:
            cm = api.get(CM_PATH)
            conf = yaml.safe_load(cm.get("data", {}).get("ClusterConfiguration", "")) or {}
            conf = migrate_cluster_configuration(conf, target=target, kubeadm=kubeadm)
            cm.setdefault("data", {})["ClusterConfiguration"] = yaml.safe_dump(conf, sort_keys=True)
            api.request("PUT", CM_PATH, cm)
            return
        except ApiError as e:
            if e.status != 409:
                raise Fatal(f"[upgrade/apply] FATAL: error uploading the kubeadm ClusterConfiguration: {e}") from e
    raise Fatal("[upgrade/apply] FATAL: error uploading the kubeadm ClusterConfiguration: the object has been "
                "modified; please apply your changes to the latest version and try again")


def _kubelet_config(node: Node, target: Version) -> None:
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
    backup = f"/etc/kubernetes/tmp/kubeadm-kubelet-config-{stamp}/config.yaml"
    node.say(f"[upgrade] Backing up kubelet config file to {backup}")
    host_backup = node.layout.host_path(backup)
    host_backup.parent.mkdir(parents=True, exist_ok=True)
    current = node.layout.host_path("/var/lib/kubelet/config.yaml")
    if current.exists():
        shutil.copy2(current, host_backup)
    node.say('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
    noderoot.write_kubelet_config(node.layout, target)


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


def _unupgraded_control_planes(node: Node, api: KubeApi) -> list[str] | None:
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


def _addons(node: Node, api: KubeApi, target: Version) -> None:
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


def _ensure_addon(node: Node, api: KubeApi, addon: Addon, image: str) -> None:
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


def upgrade_node(node: Node, args: list[str]) -> int:
    control_plane = nodestate.node_is_control_plane(node.layout)
    api = _client(node, "/etc/kubernetes/admin.conf" if control_plane else "/etc/kubernetes/kubelet.conf")
    node.say("[upgrade] Reading configuration from the cluster...")
    node.say("[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config "
             "-o yaml'")
    conf = cluster_configuration(api)
    try:
        target = Version.parse(str(conf.get("kubernetesVersion", "")))
    except InvalidVersionError as e:
        raise Fatal(f"[upgrade] FATAL: invalid kubernetesVersion in the kubeadm-config ConfigMap: {e}") from e
    kubeadm = installed_version(node)
    if target.minor > kubeadm.minor:
        raise Fatal("[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n"
                    f'\t- Specified version to upgrade to "{target}" is at least one minor release higher than the '
                    f"kubeadm minor release ({target.minor} > {kubeadm.minor}). Such an upgrade is not supported\n\n"
                    "Please fix the misalignments highlighted above and try upgrading again")
    node.say("[preflight] Running pre-flight checks")
    if control_plane:
        node.say("[preflight] Pulling images required for setting up a Kubernetes cluster")
        _static_pods(node, api, _sandbox(node), target, args, phase="node")
        node.say("[upgrade] The control plane instance for this node was successfully updated!")
    else:
        node.say("[preflight] Skipping prepull. Not a control plane node.")
        node.say("[upgrade] Skipping phase. Not a control plane node.")
    _kubelet_config(node, target)
    if control_plane:
        _addons(node, api, target)
    else:
        node.say("[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.")
        node.say("[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node.")
    node.say("[upgrade] The configuration for this node was successfully updated!")
    node.say("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
    return 0


def plan(node: Node, args: list[str]) -> int:
    from upgrader.sandbox.nodecmd.plan import print_plan

    api = _client(node, "/etc/kubernetes/admin.conf")
    _preflight(node, api, args)
    return print_plan(node, api, installed_version(node), _nodes(api))
