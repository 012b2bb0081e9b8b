"""``kubeadm upgrade node``: the control plane of another control-plane node to the version recorded
in kubeadm-config, then the kubelet config (every node) and, where it is due, the addons.

It has run as a phase workflow since v1.15, so its failures always read ``error execution phase ...``;
v1.32 relabelled its progress lines and moved the addons into their own phase.
"""

from __future__ import annotations

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError
from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.node.tools.kubeadm import phases
from upgrader.sandbox.node.tools.kubeadm.addons import upgrade_addons
from upgrader.sandbox.node.tools.kubeadm.cluster import Fatal, client, cluster_configuration, sandbox_config


def upgrade_node(node: Node, args: list[str], *, kubeadm: Version) -> int:
    control_plane = machine.node_is_control_plane(node.layout)
    api = client(node, "/etc/kubernetes/admin.conf" if control_plane else "/etc/kubernetes/kubelet.conf")
    modern = phases.phased_apply(kubeadm)
    if modern:
        node.say('[upgrade] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...')
        node.say("[upgrade] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.")
    else:
        node.say("[upgrade] Reading configuration from the cluster...")
        node.say("[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
                 "kubeadm-config -o yaml'")
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
    done = "upgraded" if modern else "updated"  # v1.32 reworded the node's phases
    node.say("[upgrade/preflight] Running pre-flight checks" if modern else "[preflight] Running pre-flight checks")
    if control_plane:
        node.say(f"{'[upgrade/preflight]' if modern else '[preflight]'} Pulling images required for setting up a "
                 "Kubernetes cluster")
        phases.static_pods(node, api, sandbox_config(node), target, args, conf=conf, phase="node", modern=modern)
        if not modern:  # the addons were part of the control-plane phase until v1.32 gave them their own
            upgrade_addons(node, api, target)
        node.say(f"{'[upgrade/control-plane]' if modern else '[upgrade]'} The control plane instance for this node "
                 f"was successfully {done}!")
    else:
        node.say(f"{'[upgrade/preflight]' if modern else '[preflight]'} Skipping prepull. Not a control plane node.")
        node.say(f"{'[upgrade/control-plane]' if modern else '[upgrade]'} Skipping phase. Not a control plane node.")
    phases.kubelet_config(node, target)
    if modern:
        node.say("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!")
    if control_plane and modern:
        upgrade_addons(node, api, target)
    elif not control_plane:
        node.say("[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.")
        node.say("[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node.")
    node.say(f"[upgrade] The configuration for this node was successfully {done}!")
    node.say("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
    return 0
