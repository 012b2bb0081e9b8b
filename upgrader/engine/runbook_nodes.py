"""Runbook steps for a node that stays NotReady after an upgrade (runbook node-stuck-not-ready).

node-conditions (read-only): the Node's Ready condition with its reason and message, its kubelet's
version against the API server's, ``systemctl is-active kubelet`` and the kubelet's journal tail; what
the evidence says (``removed-flag``: the kubelet exits on ``unknown flag: --X``, as after a minor that
removed a flag still in kubeadm-flags.env; else ``unknown``, and the step says what to look at).

kubelet-flags-fix: rewrites /var/lib/kubelet/kubeadm-flags.env without the flags the kubelet refused (from
its own journal, or ``with: {flags: [...]}``), keeping the old file in the run's dir
``/etc/kubernetes/tmp/upgrader-kubelet-RUN/`` (outside the kubelet's reach) and writing the new one to a
temporary file renamed into place; the diff is recorded. On resume it is done when the kept copy has
flags the current file has not (the journal no longer names them once the kubelet runs again).

restart-kubelet: ``systemctl daemon-reload``, ``systemctl restart kubelet``, then the node Ready for
several readings in a row; a node upgrader cordoned (its annotation ``upgrader.io/cordoned-by=RUN``) is
uncordoned in the same patch that drops the annotation; a node someone else cordoned is left as it is.
"""

from __future__ import annotations

from typing import Any

from upgrader.domain.control_plane_repair import (
    classify_not_ready,
    flags_present,
    manifest_diff,
    removed_flags,
    unknown_flags,
    without_flags,
)
from upgrader.domain.plans import Action, Step
from upgrader.engine import drain, gates, steps
from upgrader.engine.context import RunContext, last_lines
from upgrader.engine.runbook_common import TMP_DIR, Describe, args, never, node_arg, say
from upgrader.engine.steps import Handler, StepError
from upgrader.errors import FileMissingError, UpgraderError
from upgrader.nodes import commands

FLAGS_FILE = "/var/lib/kubelet/kubeadm-flags.env"
JOURNAL_LINES = 100
READ_TIMEOUT = 60.0


def work_dir(run_id: int) -> str:
    return f"{TMP_DIR}/upgrader-kubelet-{run_id}"


def _ready_condition(node: dict[str, Any] | None) -> dict[str, Any]:
    conditions = ((node or {}).get("status") or {}).get("conditions") or []
    found = next((c for c in conditions if c.get("type") == "Ready"), None) or {}
    return {"status": found.get("status", "Unknown"), "reason": found.get("reason"), "message": found.get("message")}


def _journal(ctx: RunContext, node: str) -> str:
    result = ctx.run(node, ["journalctl", "-u", "kubelet", "-n", str(JOURNAL_LINES), "--no-pager", "-o", "cat"],
                     timeout=READ_TIMEOUT, check=False)
    return result.stdout if result.ok else ""


def _conditions(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    found = ctx.api.get_node(node)
    if found is None:
        raise StepError(f"the cluster has no node {node}")
    try:
        apiserver = str(ctx.api.server_version().get("gitVersion"))
    except UpgraderError as e:
        apiserver = f"(unknown: {e.message})"
    active = ctx.run(node, ["systemctl", "is-active", "kubelet"], timeout=READ_TIMEOUT, check=False)
    journal = _journal(ctx, node)
    ready = _ready_condition(found)
    cause = classify_not_ready(journal, str(ready.get("message") or ""))
    return {"node": node, "ready": ready, "kubelet_version": gates.kubelet_version(found),
            "apiserver_version": apiserver, "kubelet_active": active.stdout.strip() or "unknown",
            "journal_tail": last_lines(journal, 10).splitlines(),
            "unschedulable": bool((found.get("spec") or {}).get("unschedulable")),
            "cause": cause.cause, "evidence": cause.evidence, "next": cause.next, "flags": list(cause.flags)}


def _given_flags(step: Step) -> list[str]:
    given = args(step).get("flags")
    if isinstance(given, list) and given:
        return [str(f) if str(f).startswith("--") else f"--{f}" for f in given]
    return []


def _fix(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    done = _fix_observe(ctx, step)
    if done is not None:  # a run killed after the rename: the kubelet no longer complains, the kept copy says what
        return done | {"changed": False}
    try:
        text = ctx.read(node, FLAGS_FILE).decode(errors="replace")
    except FileMissingError:
        raise StepError(f"{node} has no {FLAGS_FILE}") from None
    flags = _given_flags(step) or unknown_flags(_journal(ctx, node))
    if not flags:
        raise StepError(f"the kubelet of {node} refused no flag in its journal, and the step names none "
                        "(with: flags): nothing to remove; see node-conditions' evidence")
    out: dict[str, Any] = {"node": node, "flags": flags, "file": FLAGS_FILE}
    if not flags_present(text, flags):
        return out | {"changed": False}
    new = without_flags(text, flags)
    aside = work_dir(ctx.run_id)
    ctx.run(node, ["mkdir", "-p", "-m", "0700", aside])
    ctx.write(node, f"{aside}/kubeadm-flags.env", text.encode(), 0o600)
    staged = f"{FLAGS_FILE}.upgrader-{ctx.run_id}"
    ctx.write(node, staged, new.encode(), 0o644)
    ctx.run(node, ["mv", "-f", "--", staged, FLAGS_FILE])
    return out | {"changed": True, "kept": f"{aside}/kubeadm-flags.env",
                  "diff": manifest_diff(text, new, current_name=FLAGS_FILE, backup_name=f"{FLAGS_FILE} (new)")}


def _fix_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    """Done when this run kept the old file and the current one lacks the flags removed: those the step
    names, else those the kept copy has and the current file has not (once the kubelet restarted on the
    fixed file its journal no longer names them, so they are read from the files, not the journal)."""
    node = node_arg(step)
    kept = f"{work_dir(ctx.run_id)}/kubeadm-flags.env"
    try:
        before = ctx.read(node, kept).decode(errors="replace")
        text = ctx.read(node, FLAGS_FILE).decode(errors="replace")
    except FileMissingError:
        return None
    flags = _given_flags(step) or removed_flags(before, text)
    if not flags or flags_present(text, flags):
        return None
    return {"node": node, "flags": flags, "file": FLAGS_FILE, "changed": True, "kept": kept}


def _restart(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    for argv in commands.restart_kubelet():
        ctx.run(node, argv)
    out = gates.wait_for(ctx, f"{node} Ready", [gates.nodes_at(ctx.api, [node], None)])
    return out | {"uncordoned": _uncordon_if_ours(ctx, node)}


def _uncordon_if_ours(ctx: RunContext, node: str) -> str | None:
    """Uncordon the node when upgrader cordoned it (its annotation names the run); never someone else's."""
    found = ctx.api.get_node(node) or {}
    owner = ((found.get("metadata") or {}).get("annotations") or {}).get(drain.CORDON_ANNOTATION)
    if not (found.get("spec") or {}).get("unschedulable") or not owner or not str(owner).isdigit():
        return None
    return f"by run {owner}" if drain.uncordon(ctx.api, node, run_id=int(owner)) else None


def _restart_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    if not gates.nodes_at(ctx.api, [node], None)().ok:
        return None
    active = ctx.run(node, ["systemctl", "is-active", "kubelet"], timeout=READ_TIMEOUT, check=False)
    if active.stdout.strip() != "active":
        return None
    return {"node": node, "ready": True, "uncordoned": _uncordon_if_ours(ctx, node)}


def _values(ctx: RunContext, step: Step) -> dict[str, Any]:
    return {"node": args(step).get("node", "NODE"), "run": ctx.run_id or "RUN", "dir": work_dir(ctx.run_id),
            "file": FLAGS_FILE}


def _say(*lines: str) -> Describe:
    return say(_values, *lines)


HANDLERS: dict[Action, Handler] = {
    Action.NODE_CONDITIONS: Handler(_conditions, never, _say(
        "GET node {node}: its Ready condition (reason, message) and kubelet version; GET /version",
        "on {node}: systemctl is-active kubelet; journalctl -u kubelet -n 100 --no-pager -o cat")),
    Action.KUBELET_FLAGS_FIX: Handler(_fix, _fix_observe, _say(
        "on {node}: cp {file} {dir}/kubeadm-flags.env",
        "on {node}: write {file} without the flags the kubelet refused (`unknown flag: --X` in its journal) "
        "to {file}.upgrader-{run}, then mv -f it to {file}")),
    Action.RESTART_KUBELET: Handler(_restart, _restart_observe, _say(
        "on {node}: systemctl daemon-reload; systemctl restart kubelet",
        "wait until {node} is Ready several readings in a row; uncordon it only if upgrader cordoned it "
        "(annotation upgrader.io/cordoned-by)")),
}
steps.HANDLERS.update(HANDLERS)
