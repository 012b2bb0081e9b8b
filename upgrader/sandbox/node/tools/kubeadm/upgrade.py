"""``kubeadm upgrade plan|apply|node`` on a sandbox node, following DOMAIN.md's procedure.

apply: health checks (API, control-plane nodes Ready, manifests), version policy, static pod upgrade
of this node (:mod:`.static_pods`), then the kubeadm-config ConfigMap (kubernetesVersion, in
kubeadm's own config API: :mod:`.config_api`), the kubelet config and the addons (:mod:`.addons`).
node: the same static pod upgrade to the version recorded in kubeadm-config (control-plane nodes),
the kubelet config (every node) and the addons (control-plane nodes).
plan: the same health checks, then what apply would change (:mod:`.plan`).
"""

from __future__ import annotations

import shutil
import sys
import time

import yaml

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.node import machine, manifests, provision
from upgrader.sandbox.node.tools import Node, option
from upgrader.sandbox.node.tools.kubeadm import policy
from upgrader.sandbox.node.tools.kubeadm.addons import upgrade_addons
from upgrader.sandbox.node.tools.kubeadm.cluster import (
    CM_PATH,
    CP_LABEL,
    STACK_HINT,
    Fatal,
    client,
    cluster_configuration,
    is_ready,
    kubelet_version,
    nodes,
    sandbox_config,
)
from upgrader.sandbox.node.tools.kubeadm.config_api import migrate_cluster_configuration
from upgrader.sandbox.node.tools.kubeadm.plan import print_plan
from upgrader.sandbox.node.tools.kubeadm.static_pods import StaticPodUpgrade, UpgradeFailed, go_duration
from upgrader.sandbox.node.tools.kubeadm.version import installed_version
from upgrader.sandbox.sandbox_config import SandboxConfig


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


def _preflight(node: Node, api: KubeClient, args: list[str]) -> None:
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
        not_ready = [n["metadata"]["name"] for n in nodes(api)
                     if CP_LABEL in n["metadata"].get("labels", {}) and not is_ready(n)]
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


def _policy(node: Node, api: KubeClient, *, cluster: Version, target: Version, kubeadm: Version, force: bool) -> None:
    errs = policy.enforce(cluster=cluster, target=target, kubeadm=kubeadm,
                          kubelets=[kubelet_version(n) for n in nodes(api)])
    fatal = policy.render(errs, force=force)
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
    api = client(node, "/etc/kubernetes/admin.conf")
    cfg = sandbox_config(node)
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
    upgrade_addons(node, api, target)
    node.say(f'\n[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target}". Enjoy!\n')
    node.say("[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your "
             "kubelets if you haven't already done so.")
    return 0


def _static_pods(
    node: Node, api: KubeClient, cfg: SandboxConfig, target: Version, args: list[str], *, phase: str
) -> None:
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


def _upload_config(node: Node, api: KubeClient, target: Version, *, kubeadm: Version) -> None:
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
    provision.write_kubelet_config(node.layout, target)


def upgrade_node(node: Node, args: list[str]) -> int:
    control_plane = machine.node_is_control_plane(node.layout)
    api = client(node, "/etc/kubernetes/admin.conf" if control_plane else "/etc/kubernetes/kubelet.conf")
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
        _static_pods(node, api, sandbox_config(node), target, args, phase="node")
        node.say("[upgrade] The control plane instance for this node was successfully updated!")
    else:
        node.say("[preflight] Skipping prepull. Not a control plane node.")
        node.say("[upgrade] Skipping phase. Not a control plane node.")
    _kubelet_config(node, target)
    if control_plane:
        upgrade_addons(node, api, target)
    else:
        node.say("[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.")
        node.say("[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node.")
    node.say("[upgrade] The configuration for this node was successfully updated!")
    node.say("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
    return 0


def plan(node: Node, args: list[str]) -> int:
    api = client(node, "/etc/kubernetes/admin.conf")
    _preflight(node, api, args)
    return print_plan(node, api, installed_version(node), nodes(api))
