"""``kubeadm upgrade plan|apply|node`` on a sandbox node, following DOMAIN.md's procedure.

apply: preflight (health and CoreDNS checks: :mod:`.preflight`), version policy (:mod:`.policy`, which
lets a one-minor downgrade through), static pod upgrade of this node (:mod:`.static_pods`, with the
ClusterConfiguration's extraArgs), then the kubeadm-config ConfigMap (kubernetesVersion, in kubeadm's
own config API: :mod:`.config_api`), the kubelet config (those three: :mod:`.phases`) and the addons
(:mod:`.addons`).
node: :mod:`.node_upgrade`, the same phases at the version recorded in kubeadm-config.
plan: the same health checks, then what apply would change (:mod:`.plan`).

The kubeadm binary's version decides the wording: from v1.32 ``apply`` is a phase workflow, so it
reports ``[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "vX".`` and fails
with ``error execution phase PHASE: ...``; before, ``[upgrade/successful] ... Enjoy!`` and
``[upgrade/apply] FATAL: ...``. ``upgrade node`` has failed the phase way since v1.15.
"""

from __future__ import annotations

import sys
from typing import Any

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.node.tools.kubeadm import node_upgrade, phases, policy, preflight
from upgrader.sandbox.node.tools.kubeadm.addons import upgrade_addons
from upgrader.sandbox.node.tools.kubeadm.cluster import (
    STACK_HINT,
    Fatal,
    client,
    cluster_configuration,
    kubelet_version,
    nodes,
    sandbox_config,
)
from upgrader.sandbox.node.tools.kubeadm.plan import print_plan
from upgrader.sandbox.node.tools.kubeadm.version import installed_version


def main(node: Node, verb: str, args: list[str]) -> int:
    phased = verb == "node"  # `upgrade node` has run as phases since v1.15
    try:
        if verb == "plan":
            return plan(node, args)
        kubeadm = installed_version(node)
        if verb == "apply":
            phased = phases.phased_apply(kubeadm)
            return apply(node, args, kubeadm=kubeadm)
        return node_upgrade.upgrade_node(node, args, kubeadm=kubeadm)
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
        label = "[upgrade/preflight]" if phases.phased_apply(kubeadm) else "[upgrade/version]"
        node.say(f"{label} Found {len(errs.skippable)} potential version compatibility errors but "
                 f"skipping since the --force flag is set: \n\n{lines}")


def _confirm(node: Node, args: list[str]) -> None:
    if {"--yes", "-y", "--force", "-f", "--dry-run"} & set(args) or "--yes=true" in args:
        return  # sessionIsInteractive: -y, -f and --dry-run all mean no question
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
    modern = phases.phased_apply(kubeadm)
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
    if "--dry-run" in args:  # the checks ran; nothing is changed (the sandbox prints no would-be manifests)
        node.say("[upgrade/successful] Finished dryrunning successfully!" if modern
                 else "[dryrun] Finished dryrunning successfully!")
        return 0
    label = "[upgrade/preflight]" if modern else "[upgrade/prepull]"
    node.say(f"{label} Pulling images required for setting up a Kubernetes cluster")
    node.say(f"{label} This might take a minute or two, depending on the speed of your internet connection")
    phases.static_pods(node, api, cfg, target, args, conf=conf, phase="apply", modern=modern)
    if modern:
        node.say("[upgrade/control-plane] The control plane instance for this node was successfully upgraded!")
    phases.upload_config(node, api, target, kubeadm=kubeadm)
    if modern:
        node.say('[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the configuration '
                 "for the kubelets in the cluster")
        node.say("[upgrade/kubeconfig] The kubeconfig files for this node were successfully upgraded!")
    phases.kubelet_config(node, target)
    if modern:
        node.say("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!")
        node.say("[upgrade/bootstrap-token] Configuring bootstrap token and cluster-info RBAC rules")
        for rule in phases.BOOTSTRAP_RULES:
            node.say(f"[bootstrap-token] Configured RBAC rules to allow {rule}")
    upgrade_addons(node, api, target)
    if modern:
        node.say(f'\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{target}".\n')
        node.say("[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.")
        return 0
    node.say(f'\n[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target}". Enjoy!\n')
    node.say("[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your "
             "kubelets if you haven't already done so.")
    return 0


def plan(node: Node, args: list[str]) -> int:
    api = client(node, "/etc/kubernetes/admin.conf")
    modern = phases.phased_apply(installed_version(node))
    _read_config(node, api, modern=modern)
    node.say("[upgrade/preflight] Running preflight checks" if modern else "[preflight] Running pre-flight checks.")
    preflight.health(node, api, preflight.ignored(args))
    return print_plan(node, api, installed_version(node), nodes(api))
