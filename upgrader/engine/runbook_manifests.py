"""Runbook steps on a control-plane node's static pod manifests (runbook apiserver-crashloop-after-upgrade).

static-pod-state: what the container runtime says of the component (``crictl ps -a --name C -o json``:
state and attempt of its newest container) and, when that container exited, its last log lines
(``crictl logs --tail N ID``). Read-only; with ``running: true`` it fails unless that container runs
(the crashloop runbook's last word on the node: /readyz may be another API server's answer).

manifest-diff: the unified diff from ``/etc/kubernetes/manifests/C.yaml`` to the newest kubeadm backup
of it (``/etc/kubernetes/tmp/kubeadm-backup-manifests-*/C.yaml``); refuses when kubeadm kept none.

restore-backup-manifest: kubeadm's documented manual recovery ("the contents of this folder can be
manually restored in /etc/kubernetes/manifests"), done so the kubelet never sees a half-written or a
second manifest: the current manifest is copied to the run's quarantine dir
``/etc/kubernetes/tmp/upgrader-quarantine-RUN/`` (outside manifests/, which the kubelet reads whole),
the backup is written to a temporary file in /etc/kubernetes and renamed over the manifest. On resume
the step is done when the manifest's sha256 equals the backup's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from upgrader.domain.control_plane_repair import backup_dirs_newest_first, manifest_diff
from upgrader.domain.manifest_backups import backup_stamp, image_version, manifest_image, skew_refusal
from upgrader.domain.plans import Action, Step
from upgrader.domain.versions import Version
from upgrader.engine import steps
from upgrader.engine.context import RunContext, last_lines
from upgrader.engine.runbook_common import MANIFESTS_DIR, TMP_DIR, Describe, args, never, node_arg, say
from upgrader.engine.steps import Handler, StepError
from upgrader.errors import FileMissingError, UpgraderError

LOG_TAIL = 50
READ_TIMEOUT = 60.0


def _component(step: Step) -> str:
    component = args(step).get("component") or "kube-apiserver"
    if component not in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        raise StepError(f"step {step.n}: {component!r} is not a control-plane static pod")
    return str(component)


def quarantine_dir(run_id: int) -> str:
    return f"{TMP_DIR}/upgrader-quarantine-{run_id}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- static-pod-state ------------------------------------------------------------------------------

def _containers(ctx: RunContext, node: str, component: str) -> list[dict[str, Any]]:
    result = ctx.run(node, ["crictl", "ps", "-a", "--name", component, "-o", "json"], timeout=READ_TIMEOUT)
    try:
        found = json.loads(result.stdout or "{}").get("containers") or []
    except ValueError as e:
        raise StepError(f"`crictl ps -a` on {node} did not answer JSON: {last_lines(result.stdout, 1)}") from e
    mine = [c for c in found if isinstance(c, dict) and (c.get("metadata") or {}).get("name") == component]
    return sorted(mine, key=lambda c: int(c.get("createdAt") or 0), reverse=True)


def _state(ctx: RunContext, step: Step) -> dict[str, Any]:
    node, component = node_arg(step), _component(step)
    found = _containers(ctx, node, component)
    if not found:
        absent = {"node": node, "component": component, "containers": 0, "state": "absent",
                  "hint": f"no {component} container on {node}: is its manifest in {MANIFESTS_DIR}?"}
        _require_running(step, absent)
        return absent
    newest = found[0]
    out: dict[str, Any] = {"node": node, "component": component, "containers": len(found),
                           "id": str(newest.get("id", ""))[:13], "state": newest.get("state"),
                           "attempt": (newest.get("metadata") or {}).get("attempt", 0),
                           "image": (newest.get("image") or {}).get("image")}
    if newest.get("state") == "CONTAINER_EXITED":
        logs = ctx.run(node, ["crictl", "logs", "--tail", str(LOG_TAIL), str(newest.get("id", ""))],
                       timeout=READ_TIMEOUT, check=False)
        out["log_tail"] = last_lines((logs.stdout + logs.stderr).strip(), 20).splitlines()
    _require_running(step, out)
    return out


def _require_running(step: Step, out: dict[str, Any]) -> None:
    """With ``running: true`` the step is a check: the newest container must be running."""
    if args(step).get("running") is not True or out.get("state") == "CONTAINER_RUNNING":
        return
    said = "; ".join(out.get("log_tail") or [])[-200:]
    raise StepError(f"{out['component']} on {out['node']} is {out.get('state')} (attempt {out.get('attempt', 0)}), "
                    "not running" + (f": {said}" if said else ""))


# -- manifest-diff and restore ---------------------------------------------------------------------

def _backup(ctx: RunContext, node: str, component: str) -> tuple[str, bytes]:
    """(path, bytes) of the newest kubeadm backup of the component's manifest; StepError when none."""
    listing = ctx.run(node, ["ls", "-1", TMP_DIR], timeout=READ_TIMEOUT, check=False)
    for name in backup_dirs_newest_first(listing.stdout.splitlines() if listing.ok else []):
        path = f"{TMP_DIR}/{name}/{component}.yaml"
        try:
            return path, ctx.read(node, path)
        except FileMissingError:
            continue  # kubeadm writes no backup of a component it did not change
    raise StepError(f"no kubeadm backup of {component}.yaml under {TMP_DIR}/kubeadm-backup-manifests-*/ on {node}: "
                    "nothing to restore from; use the manifest stored with the last known-good snapshot "
                    "(`upgrader snapshot show`) or fix the manifest by hand")


def _current(ctx: RunContext, node: str, component: str) -> bytes:
    try:
        return ctx.read(node, f"{MANIFESTS_DIR}/{component}.yaml")
    except FileMissingError:
        return b""


def _diff(ctx: RunContext, step: Step) -> dict[str, Any]:
    node, component = node_arg(step), _component(step)
    path, backup = _backup(ctx, node, component)
    current = _current(ctx, node, component)
    target = f"{MANIFESTS_DIR}/{component}.yaml"
    lines = manifest_diff(current.decode(errors="replace"), backup.decode(errors="replace"),
                          current_name=target, backup_name=path)
    return {"node": node, "component": component, **_backup_facts(path, backup), "current_sha256": sha256(current),
            "backup_sha256": sha256(backup), "identical": current == backup, "diff": lines}


def _backup_facts(path: str, backup: bytes) -> dict[str, Any]:
    image = manifest_image(backup.decode(errors="replace"))
    return {"backup": path, "taken": backup_stamp(path), "image": image}


def _other_apiservers(ctx: RunContext, node: str) -> dict[str, Version]:
    """node -> the version of its kube-apiserver's image, for the other control-plane nodes (the API's
    mirror pods); empty when the API cannot be read (then there is nothing to compare)."""
    try:
        pods = ctx.api.list_control_plane_pods()
    except UpgraderError:
        return {}
    found: dict[str, Version] = {}
    for pod in pods:
        where = str((pod.get("spec") or {}).get("nodeName") or "")
        labels = (pod.get("metadata") or {}).get("labels") or {}
        images = [c.get("image") for c in (pod.get("spec") or {}).get("containers") or []]
        version = image_version(images[0] if images else None)
        if where and where != node and labels.get("component") == "kube-apiserver" and version is not None:
            found[where] = version
    return found


def _restore(ctx: RunContext, step: Step) -> dict[str, Any]:
    node, component = node_arg(step), _component(step)
    path, backup = _backup(ctx, node, component)
    target = f"{MANIFESTS_DIR}/{component}.yaml"
    current = _current(ctx, node, component)
    facts = _backup_facts(path, backup)
    out = {"node": node, "component": component, **facts, "sha256": sha256(backup)}
    if current == backup:
        return out | {"restored": False, "why": "the manifest already is the backup"}
    refused = skew_refusal(image_version(facts["image"]), _other_apiservers(ctx, node))
    if refused:
        raise StepError(f"not restoring {path} on {node}: {refused}")
    aside = quarantine_dir(ctx.run_id)
    ctx.run(node, ["mkdir", "-p", "-m", "0700", aside])
    kept = f"{aside}/{component}.yaml"
    if current:
        ctx.write(node, kept, current, 0o600)
    staged = f"/etc/kubernetes/.upgrader-{ctx.run_id}-{component}.yaml"  # same filesystem, not read by the kubelet
    ctx.write(node, staged, backup, 0o600)
    ctx.run(node, ["mv", "-f", "--", staged, target])
    now = _current(ctx, node, component)
    if sha256(now) != sha256(backup):
        raise StepError(f"{target} on {node} does not match {path} after the rename (sha256 {sha256(now)[:12]})")
    return out | {"restored": True, "quarantined": kept if current else None}


def _restore_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node, component = node_arg(step), _component(step)
    try:
        path, backup = _backup(ctx, node, component)
    except StepError:
        return None
    if sha256(_current(ctx, node, component)) != sha256(backup):
        return None
    return {"node": node, "component": component, "backup": path, "sha256": sha256(backup), "restored": True}


def _values(ctx: RunContext, step: Step) -> dict[str, Any]:
    return {"node": args(step).get("node", "NODE"), "component": args(step).get("component", "kube-apiserver"),
            "run": ctx.run_id or "RUN", "manifests": MANIFESTS_DIR, "tmp": TMP_DIR}


def _say(*lines: str) -> Describe:
    return say(_values, *lines)


def _describe_restore(ctx: RunContext, step: Step) -> list[str]:
    """The backup the person confirms: its path, kubeadm's timestamp, its image (read from the node)."""
    lines = _say("on {node}: cp {manifests}/{component}.yaml {tmp}/upgrader-quarantine-{run}/{component}.yaml",
                 "on {node}: write BACKUP to /etc/kubernetes/.upgrader-{run}-{component}.yaml, then mv -f it to "
                 "{manifests}/{component}.yaml",
                 "refused if BACKUP's image is more than one minor from another control-plane node's "
                 "kube-apiserver (HA skew rule)",
                 "check: sha256 of {manifests}/{component}.yaml equals BACKUP's")(ctx, step)
    try:
        path, data = _backup(ctx, node_arg(step), _component(step))
    except UpgraderError as e:
        return [f"BACKUP: the newest {TMP_DIR}/kubeadm-backup-manifests-*/ copy (it cannot be read now: {e.message})",
                *lines]
    facts = _backup_facts(path, data)
    return [f"BACKUP: {path} (taken {facts['taken'] or 'at an unknown time'} by the node's clock), image "
            f"{facts['image'] or 'unknown'}", *lines]


HANDLERS: dict[Action, Handler] = {
    Action.STATIC_POD_STATE: Handler(_state, never, _say(
        "on {node}: crictl ps -a --name {component} -o json   (state and attempt of the newest container)",
        "on {node}: crictl logs --tail 50 ID   (when that container exited)")),
    Action.MANIFEST_DIFF: Handler(_diff, never, _say(
        "on {node}: ls {tmp}; diff -u {manifests}/{component}.yaml {tmp}/kubeadm-backup-manifests-NEWEST/"
        "{component}.yaml   (refused when kubeadm kept no backup)")),
    Action.RESTORE_BACKUP_MANIFEST: Handler(_restore, _restore_observe, _describe_restore),
}
steps.HANDLERS.update(HANDLERS)
