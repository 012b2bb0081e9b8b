"""The phases ``kubeadm upgrade apply`` and ``kubeadm upgrade node`` share: the control plane's static
pods (with the ClusterConfiguration's extraArgs, etcd left alone under ``--etcd-upgrade=false``), the
kubeadm-config upload in kubeadm's own config API, and the kubelet config."""

from __future__ import annotations

import shutil
import time
from typing import Any

import yaml

from upgrader.domain.versions import Version
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.node import provision
from upgrader.sandbox.node.tools import Node, option
from upgrader.sandbox.node.tools.kubeadm import config_api
from upgrader.sandbox.node.tools.kubeadm.cluster import CM_PATH, Fatal
from upgrader.sandbox.node.tools.kubeadm.static_pods import CONTROL_PLANE, StaticPodUpgrade, UpgradeFailed, go_duration
from upgrader.sandbox.sandbox_config import SandboxConfig

PHASED_APPLY = (1, 32)  # `upgrade apply` became a phase workflow (k/k PR #126032)
BOOTSTRAP_RULES = (
    "Node Bootstrap tokens to get nodes",
    "Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials",
    "the csrapprover controller automatically approve CSRs from a Node Bootstrap Token",
    "certificate rotation for all node client certificates in the cluster",
)


def phased_apply(kubeadm: Version) -> bool:
    return (kubeadm.major, kubeadm.minor) >= PHASED_APPLY


def static_pods(node: Node, api: KubeClient, cfg: SandboxConfig, target: Version, args: list[str], *,
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
        node.say(f'[upgrade] Upgrading your Static Pod-hosted control plane instance to version "{target}"...')
    extra = {c: config_api.extra_args(conf, c) for c in CONTROL_PLANE}
    try:
        StaticPodUpgrade(node, api, cfg, target, timeout, etcd_upgrade=etcd_upgrade, extra_args=extra,
                         modern=modern).run()
    except UpgradeFailed as e:
        label = "[upgrade/apply]" if phase == "apply" else "[upgrade/control-plane]"
        raise Fatal(f"{label} FATAL: {e}", phase="control-plane",
                    modern=f"couldn't complete the static pod upgrade: {e}") from e


def upload_config(node: Node, api: KubeClient, target: Version, *, kubeadm: Version) -> None:
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


def kubelet_config(node: Node, target: Version) -> None:
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
