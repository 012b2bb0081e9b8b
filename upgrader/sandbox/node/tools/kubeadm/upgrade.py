"""``kubeadm upgrade plan|apply|node`` on a sandbox node, following DOMAIN.md's procedure.

apply: preflight (health and CoreDNS checks: :mod:`.preflight`), version policy (:mod:`.policy`, which
lets a one-minor downgrade through), static pod upgrade of this node (:mod:`.static_pods`, with the
ClusterConfiguration's extraArgs), then the kubeadm-config ConfigMap (kubernetesVersion, in kubeadm's
own config API: :mod:`.config_api`), the kubelet config and the addons (:mod:`.addons`).
node: the same static pod upgrade to the version recorded in kubeadm-config (control-plane nodes),
the kubelet config (every node) and the addons (control-plane nodes).
plan: the same health checks, then what apply would change (:mod:`.plan`).

The kubeadm binary's version decides the wording: from v1.32 ``apply`` is a phase workflow, so it
reports ``[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "vX".`` and fails
with ``error execution phase PHASE: ...``; before, ``[upgrade/successful] ... Enjoy!`` and
``[upgrade/apply] FATAL: ...``. ``upgrade node`` has failed the phase way since v1.15.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any

import yaml

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.node import machine, provision
from upgrader.sandbox.node.tools import Node, option
from upgrader.sandbox.node.tools.kubeadm import config_api, policy, preflight, static_pods
from upgrader.sandbox.node.tools.kubeadm.addons import upgrade_addons
from upgrader.sandbox.node.tools.kubeadm.cluster import (
    CM_PATH,
    STACK_HINT,
    Fatal,
    client,
    cluster_configuration,
    kubelet_version,
    nodes,
    sandbox_config,
)
from upgrader.sandbox.node.tools.kubeadm.plan import print_plan
from upgrader.sandbox.node.tools.kubeadm.static_pods import StaticPodUpgrade, UpgradeFailed, go_duration
from upgrader.sandbox.node.tools.kubeadm.version import installed_version
from upgrader.sandbox.sandbox_config import SandboxConfig

PHASED_APPLY = (1, 32)  # `upgrade apply` became a phase workflow (k/k PR #126032)


def phased_apply(kubeadm: Version) -> bool:
    return (kubeadm.major, kubeadm.minor) >= PHASED_APPLY


def main(node: Node, verb: str, args: list[str]) -> int:
    phased = verb == "node"  # `upgrade node` has run as phases since v1.15
    try:
        if verb == "plan":
            return plan(node, args)
        kubeadm = installed_version(node)
        if verb == "apply":
            phased = phased_apply(kubeadm)
            return apply(node, args, kubeadm=kubeadm)
        return upgrade_node(node, args, kubeadm=kubeadm)
    except Fatal as e:
        node.warn(f"{e.render(phased=phased)}\n{STACK_HINT}")
        return 1


def _target(args: list[str]) -> Version:
    words = [a for i, a in enumerate(args) if not a.startswith("-") and not _is_value(args, i)]
    if len(words) < 3:
        raise Fatal("[upgrade/version] FATAL: missing one or more required arguments. Required arguments: [version]",
                    modern="missing one or more required arguments. Required arguments: [version]")
    try:
        return Version.parse(words[2])
    except InvalidVersionError as e:
        raise Fatal(f'[upgrade/version] FATAL: Unable to parse normalized version "{words[2]}" as a semantic '
                    "version", phase="preflight",
                    modern=f'unable to parse normalized version "{words[2]}" as a semantic version') from e


def _is_value(args: list[str], i: int) -> bool:
    return i > 0 and args[i - 1] in ("--ignore-preflight-errors", "--config", "-o", "--output")


def _policy(node: Node, api: KubeClient, *, cluster: Version, target: Version, kubeadm: Version, force: bool) -> None:
    errs = policy.enforce(cluster=cluster, target=target, kubeadm=kubeadm,
                          kubelets=[kubelet_version(n) for n in nodes(api)])
    fatal = policy.render(errs, force=force)
    if fatal:
        raise fatal
    if errs.skippable:
        lines = "\n".join(f"\t- {e}" for e in errs.skippable)
        label = "[upgrade/preflight]" if phased_apply(kubeadm) else "[upgrade/version]"
        node.say(f"{label} Found {len(errs.skippable)} potential version compatibility errors but "
                 f"skipping since the --force flag is set: \n\n{lines}")


def _confirm(node: Node, args: list[str]) -> None:
    if {"--yes", "-y"} & set(args) or "--yes=true" in args:
        return
    node.say("[upgrade] Are you sure you want to proceed? [y/N]: ")
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise Fatal("won't proceed; the user didn't answer (Y|y) in order to continue", phase="preflight")


def _read_config(node: Node, api: KubeClient, *, modern: bool) -> dict[str, Any]:
    if modern:
        node.say('[upgrade] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...')
        node.say("[upgrade] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.")
    else:
        node.say("[upgrade/config] Reading configuration from the cluster...")
        node.say("[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
                 "kubeadm-config -o yaml'")
    return cluster_configuration(api)


def _preflight(node: Node, api: KubeClient, args: list[str], *, kubeadm: Version, modern: bool) -> None:
    """v1.32+ runs the CoreDNS checks first, inside its preflight phase; before, after the health checks."""
    skip = preflight.ignored(args)
    if modern:
        node.say("[upgrade/preflight] Running preflight checks")
        preflight.coredns(node, api, kubeadm, skip)
        preflight.health(node, api, skip)
        return
    node.say("[preflight] Running pre-flight checks.")
    preflight.health(node, api, skip)
    preflight.coredns(node, api, kubeadm, skip)


def _cluster_version(api: KubeClient) -> Version:
    try:
        return Version.parse(api.git_version())
    except (ApiError, InvalidVersionError) as e:
        raise Fatal(f"[upgrade/versions] FATAL: Couldn't fetch cluster version from the API Server: {e}",
                    phase="preflight", modern=f"Unable to fetch cluster version: {e}") from e


def apply(node: Node, args: list[str], *, kubeadm: Version) -> int:
    modern = phased_apply(kubeadm)
    target = _target(args)
    api = client(node, "/etc/kubernetes/admin.conf")
    cfg = sandbox_config(node)
    conf = _read_config(node, api, modern=modern)
    _preflight(node, api, args, kubeadm=kubeadm, modern=modern)
    cluster = _cluster_version(api)
    if modern:
        node.say(f'[upgrade/preflight] You have chosen to upgrade the cluster version to "{target}"')
    else:
        node.say(f'[upgrade/version] You have chosen to change the cluster version to "{target}"')
    node.say(f"[upgrade/versions] Cluster version: {cluster}\n[upgrade/versions] kubeadm version: {kubeadm}")
    _policy(node, api, cluster=cluster, target=target, kubeadm=kubeadm, force="--force" in args)
    _confirm(node, args)
    label = "[upgrade/preflight]" if modern else "[upgrade/prepull]"
    node.say(f"{label} Pulling images required for setting up a Kubernetes cluster")
    node.say(f"{label} This might take a minute or two, depending on the speed of your internet connection")
    _static_pods(node, api, cfg, target, args, conf=conf, phase="apply", modern=modern)
    if modern:
        node.say("[upgrade/control-plane] The control plane instance for this node was successfully upgraded!")
    _upload_config(node, api, target, kubeadm=kubeadm)
    _kubelet_config(node, target)
    if modern:
        node.say("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!")
    upgrade_addons(node, api, target)
    if modern:
        node.say(f'\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{target}".\n')
        node.say("[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.")
        return 0
    node.say(f'\n[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target}". Enjoy!\n')
    node.say("[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your "
             "kubelets if you haven't already done so.")
    return 0


def _static_pods(node: Node, api: KubeClient, cfg: SandboxConfig, target: Version, args: list[str], *,
                 conf: dict[str, Any], phase: str, modern: bool) -> None:
    """The control-plane phase: this node's static pods to ``target``, with the ClusterConfiguration's
    extraArgs in the manifests kubeadm writes; etcd's left alone with ``--etcd-upgrade=false``."""
    timeout = cfg.timeouts.kubeadm
    etcd_upgrade = (option(args, "--etcd-upgrade") or "true").lower() != "false"
    if phase == "apply" and modern:
        node.say(f'[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version "{target}" '
                 f"(timeout: {go_duration(timeout)})...")
    elif phase == "apply":
        node.say(f'[upgrade/apply] Upgrading your Static Pod-hosted control plane to version "{target}" '
                 f"(timeout: {go_duration(timeout)})...")
    else:
        node.say(f'[upgrade/control-plane] Upgrading your Static Pod-hosted control plane instance to version '
                 f'"{target}"...')
    extra = {c: config_api.extra_args(conf, c) for c in static_pods.CONTROL_PLANE}
    try:
        StaticPodUpgrade(node, api, cfg, target, timeout, etcd_upgrade=etcd_upgrade, extra_args=extra,
                         modern=modern).run()
    except UpgradeFailed as e:
        label = "[upgrade/apply]" if phase == "apply" else "[upgrade/control-plane]"
        raise Fatal(f"{label} FATAL: {e}", phase="control-plane",
                    modern=f"couldn't complete the static pod upgrade: {e}") from e


def _upload_config(node: Node, api: KubeClient, target: Version, *, kubeadm: Version) -> None:
    node.say('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" '
             "Namespace")
    for _ in range(5):  # another writer between our read and write: read again, as a client-go retry would
        try:
            cm = api.get(CM_PATH)
            conf = yaml.safe_load(cm.get("data", {}).get("ClusterConfiguration", "")) or {}
            conf = config_api.migrate_cluster_configuration(conf, target=target, kubeadm=kubeadm)
            cm.setdefault("data", {})["ClusterConfiguration"] = yaml.safe_dump(conf, sort_keys=True)
            api.request("PUT", CM_PATH, cm)
            return
        except ApiError as e:
            if e.status != 409:
                why = f"error uploading the kubeadm ClusterConfiguration: {e}"
                raise Fatal(f"[upgrade/apply] FATAL: {why}", phase="upload-config", modern=why) from e
    why = "the object has been modified; please apply your changes to the latest version and try again"
    raise Fatal(f"[upgrade/apply] FATAL: error uploading the kubeadm ClusterConfiguration: {why}",
                phase="upload-config", modern=f"error uploading the kubeadm ClusterConfiguration: {why}")


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


def upgrade_node(node: Node, args: list[str], *, kubeadm: Version) -> int:
    control_plane = machine.node_is_control_plane(node.layout)
    api = client(node, "/etc/kubernetes/admin.conf" if control_plane else "/etc/kubernetes/kubelet.conf")
    node.say("[upgrade] Reading configuration from the cluster...")
    node.say("[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config "
             "-o yaml'")
    conf = cluster_configuration(api)
    try:
        target = Version.parse(str(conf.get("kubernetesVersion", "")))
    except InvalidVersionError as e:
        raise Fatal(f"[upgrade] FATAL: invalid kubernetesVersion in the kubeadm-config ConfigMap: {e}",
                    modern=f"invalid kubernetesVersion in the kubeadm-config ConfigMap: {e}") from e
    if target.minor > kubeadm.minor:
        why = ("the --version argument is invalid due to these fatal errors:\n\n"
               f'\t- Specified version to upgrade to "{target}" is at least one minor release higher than the '
               f"kubeadm minor release ({target.minor} > {kubeadm.minor}). Such an upgrade is not supported\n\n"
               "Please fix the misalignments highlighted above and try upgrading again")
        raise Fatal(f"[upgrade/version] FATAL: {why}", phase="preflight", modern=why)
    node.say("[preflight] Running pre-flight checks")
    if control_plane:
        node.say("[preflight] Pulling images required for setting up a Kubernetes cluster")
        _static_pods(node, api, sandbox_config(node), target, args, conf=conf, phase="node",
                     modern=phased_apply(kubeadm))
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
    modern = phased_apply(installed_version(node))
    _read_config(node, api, modern=modern)
    node.say("[upgrade/preflight] Running preflight checks" if modern else "[preflight] Running pre-flight checks.")
    preflight.health(node, api, preflight.ignored(args))
    return print_plan(node, api, installed_version(node), nodes(api))
