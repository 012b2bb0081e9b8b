"""The handlers of a soak rollback's own steps (domain/rollback_soak.py), registered in steps.HANDLERS.

``restore-kubeadm-config``: kubeadm-config's ClusterConfiguration back at the old ``kubernetesVersion``
without ``--emulated-version`` in extraArgs. ``swap-manifests``: the control-plane node's kube-apiserver,
kube-controller-manager and kube-scheduler manifests of the snapshot taken before the hop written back
(etcd.yaml is left alone: etcd was held at its minor during the soak); the current ones are kept under
``/etc/kubernetes/upgrader-rollback-RUN/soak-manifests``. Both observe before they act on resume. The
package downgrade, kubelet restart, wait and verification are the etcd-restore kind's handlers.
"""

from __future__ import annotations

import posixpath
from typing import Any

import yaml

from upgrader.domain.plans import Action, Step
from upgrader.engine import steps
from upgrader.engine.context import RunContext
from upgrader.engine.emulation_config import FLAG, config_flags, config_with_flag
from upgrader.engine.rollback import _exists, _hooks, _node, aside_dir
from upgrader.engine.steps import Handler, StepError
from upgrader.errors import FileMissingError

ETCD = "/etcd.yaml"


def _config(ctx: RunContext) -> str:
    data = ctx.api.get_configmap("kube-system", "kubeadm-config")
    if data is None or "ClusterConfiguration" not in data:
        raise StepError("kube-system/kubeadm-config has no ClusterConfiguration")
    return data["ClusterConfiguration"]


def config_back(text: str, version: str) -> str:
    """The ClusterConfiguration without the emulation flag and at ``version``."""
    doc = yaml.safe_load(config_with_flag(text, None)) or {}
    doc["kubernetesVersion"] = version
    return yaml.safe_dump(doc, sort_keys=False)


def config_is_back(text: str, version: str) -> bool:
    doc = yaml.safe_load(text) or {}
    return (isinstance(doc, dict) and str(doc.get("kubernetesVersion")) == version
            and set(config_flags(text).values()) == {None})


def _restore_config(ctx: RunContext, step: Step) -> dict[str, Any]:
    version = str(step.version)
    text = _config(ctx)
    before = (yaml.safe_load(text) or {}).get("kubernetesVersion")
    if not config_is_back(text, version):
        ctx.api.patch_configmap("kube-system", "kubeadm-config", {"ClusterConfiguration": config_back(text, version)})
    return {"kubernetesVersion": {"from": before, "to": version}, FLAG: "removed"}


def _restore_config_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    return {"kubernetesVersion": str(step.version), FLAG: "removed"} if config_is_back(_config(ctx),
                                                                                       str(step.version)) else None


def _old_manifests(ctx: RunContext, node: str) -> list[tuple[str, bytes]]:
    files = [(path, data) for kind, path, data in _hooks(ctx).artefacts(node)
             if kind == "manifest" and not path.endswith(ETCD)]
    if not files:
        raise StepError(f"the snapshot holds no control-plane manifest of {node} to swap back")
    return files


def _swap(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = _node(step)
    kept = f"{aside_dir(ctx.run_id)}/soak-manifests"
    ctx.run(node, ["mkdir", "-p", "-m", "0700", kept])
    written = []
    for path, data in _old_manifests(ctx, node):
        keep = f"{kept}/{posixpath.basename(path)}"
        if not _exists(ctx, node, keep) and _exists(ctx, node, path):
            ctx.run(node, ["cp", "-p", "--", path, keep])
        ctx.write(node, path, data, 0o600)
        written.append(path)
    return {"written": written, "kept": kept, "etcd": "left as it is (held during the soak)"}


def _swap_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = _node(step)
    files = _old_manifests(ctx, node)
    for path, data in files:
        try:
            if ctx.read(node, path) != data:
                return None
        except FileMissingError:
            return None
    return {"written": [path for path, _ in files]}


HANDLERS: dict[Action, Handler] = {
    Action.RESTORE_KUBEADM_CONFIG: Handler(_restore_config, _restore_config_observe, lambda c, s: [
        f"PATCH kube-system/kubeadm-config: kubernetesVersion {s.version}, remove extraArgs {FLAG} "
        "(apiServer, controllerManager, scheduler)"]),
    Action.SWAP_MANIFESTS: Handler(_swap, _swap_observe, lambda c, s: [
        f"write the snapshot's kube-apiserver/-controller-manager/-scheduler manifests on {s.node} (current ones "
        f"kept under /etc/kubernetes/upgrader-rollback-{c.run_id or 'RUN'}/soak-manifests); etcd.yaml untouched"]),
}
steps.HANDLERS.update(HANDLERS)
