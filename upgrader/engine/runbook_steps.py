"""The handlers of the generic runbook actions (domain/runbook_actions.py, section "generic"),
registered in steps.HANDLERS. Each reads its arguments from ``step.params["with"]`` (validated and
substituted when the runbook run was recorded).

observe-cluster: every node's kubelet version, readiness and schedulability (and who cordoned it),
the control-plane pods' image versions per node, /readyz, etcd's health and the cluster's last runs.
Changes nothing; outputs are recorded with the step.

wait-healthy: the health gate (/readyz, every node Ready, every control-plane node's kube-apiserver,
kube-controller-manager and kube-scheduler mirror pods Running and ready, etcd healthy) for
``gate_passes`` readings in a row.

uncordon-left-by-upgrader: only nodes whose ``upgrader.io/cordoned-by`` annotation names a run (the
given one, when ``run`` is set). One merge patch per node sets ``unschedulable`` to false and removes
the annotation, and carries the ``resourceVersion`` read just before: if a person changed the node
in between, the API refuses (409) and the node is read again and judged again, never overwritten.
A node unschedulable without the annotation was cordoned by someone else: listed, left alone.

The actions that run a use case as a child run (rollback-upgrade, preview-restore, restore-snapshot,
renew-all-certificates, level-control-plane) live in services; their handlers here hand the step
to ``ctx.runbook`` (engine code never imports services).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from upgrader.domain.plans import Action, Step
from upgrader.domain.preflight import CORDON_ANNOTATION
from upgrader.engine import gates, steps
from upgrader.engine.context import RunContext
from upgrader.engine.runbook_common import args, never
from upgrader.engine.steps import Handler, StepError
from upgrader.errors import UpgraderError

RECENT_RUNS = 5
ROLE_LABEL = "node-role.kubernetes.io/control-plane"


# -- observe-cluster --------------------------------------------------------------------------------

def _observe(ctx: RunContext, step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"cluster": ctx.cluster}
    try:
        status, text = ctx.api.readyz()
        out["readyz"] = {"status": status, "ok": status == 200, "text": text.strip()[:200]}
    except UpgraderError as e:
        out["readyz"] = {"ok": False, "error": e.message}
    try:
        out["nodes"] = [_node_row(n) for n in ctx.api.list_nodes()]
    except UpgraderError as e:
        out["nodes_error"] = e.message
    try:
        out["control_plane_pods"] = _pods(ctx.api.list_control_plane_pods())
    except UpgraderError as e:
        out["control_plane_pods_error"] = e.message
    try:
        ok, said = ctx.hooks.etcd_health()
        out["etcd"] = {"ok": ok, "message": said}
    except UpgraderError as e:
        out["etcd"] = {"ok": False, "message": e.message}
    with ctx.unit_of_work() as uow:
        runs = [r for r in uow.repo.list_runs(ctx.cluster) if r.id != ctx.run_id]
    out["last_runs"] = [{"id": r.id, "status": r.status.value, "started_by": r.started_by,
                         "created_at": r.created_at.isoformat(), "reason": (r.outcome or {}).get("reason")}
                        for r in sorted(runs, key=lambda r: r.id)[-RECENT_RUNS:]]
    return out


def _node_row(node: Mapping[str, Any]) -> dict[str, Any]:
    meta = node.get("metadata") or {}
    return {"name": meta.get("name"), "control_plane": ROLE_LABEL in (meta.get("labels") or {}),
            "kubelet": gates.kubelet_version(dict(node)), "ready": gates.node_ready(dict(node)),
            "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
            "cordoned_by": (meta.get("annotations") or {}).get(CORDON_ANNOTATION)}


def _pods(pods: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """node -> component -> the image's tag."""
    found: dict[str, dict[str, str]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        component = ((pod.get("metadata") or {}).get("labels") or {}).get("component")
        images = [c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []]
        if node and component and images:
            found.setdefault(str(node), {})[str(component)] = str(images[0]).rpartition(":")[2]
    return found


# -- wait-healthy -----------------------------------------------------------------------------------

def control_plane_nodes(ctx: RunContext) -> list[str]:
    return sorted(str(n["metadata"]["name"]) for n in ctx.api.list_nodes()
                  if ROLE_LABEL in (n["metadata"].get("labels") or {}))


def _wait_healthy(ctx: RunContext, step: Step) -> dict[str, Any]:
    timeout = args(step).get("timeout")
    # /readyz may be answered by another API server: each node's own control-plane pods are read too
    probes = [gates.readyz(ctx.api), gates.all_nodes_ready(ctx.api),
              gates.mirror_pods_at(ctx.api, control_plane_nodes(ctx), None), gates.etcd(ctx)]
    if isinstance(timeout, int | float) and timeout > 0:
        saved = ctx.options
        ctx.options = replace(saved, gate_timeout=float(timeout))
        try:
            return gates.wait_for(ctx, f"cluster {ctx.cluster} healthy", probes)
        finally:
            ctx.options = saved
    return gates.wait_for(ctx, f"cluster {ctx.cluster} healthy", probes)


# -- uncordon what upgrader left cordoned ----------------------------------------------------------

def cordon_state(node: Mapping[str, Any], run: str | None) -> str:
    """``ours`` (unschedulable, annotated by a run: the given one when ``run``), ``stale`` (annotated
    but schedulable), ``foreign`` (cordoned without the annotation, or by another run than ``run``),
    ``free`` (schedulable, no annotation)."""
    meta = node.get("metadata") or {}
    mark = (meta.get("annotations") or {}).get(CORDON_ANNOTATION)
    cordoned = bool((node.get("spec") or {}).get("unschedulable"))
    if mark is not None and run is not None and str(mark) != str(run):
        return "foreign" if cordoned else "free"
    if mark is not None:
        return "ours" if cordoned else "stale"
    return "foreign" if cordoned else "free"


def _uncordon(ctx: RunContext, step: Step) -> dict[str, Any]:
    run = args(step).get("run")
    run = str(run) if run is not None else None
    result: dict[str, list[Any]] = {"uncordoned": [], "annotation_removed": [], "left_alone": [],
                                    "changed_meanwhile": []}
    for node in ctx.api.list_nodes():
        name = str((node.get("metadata") or {}).get("name"))
        _one(ctx, name, node, run, result)
    return result


def _one(ctx: RunContext, name: str, node: Mapping[str, Any], run: str | None,
         result: dict[str, list[Any]]) -> None:
    for attempt in range(2):
        state = cordon_state(node, run)
        if state == "free":
            return
        meta = node.get("metadata") or {}
        if state == "foreign":
            by = (meta.get("annotations") or {}).get(CORDON_ANNOTATION)
            result["left_alone"].append({"node": name, "why": f"cordoned by run {by}" if by else
                                         "cordoned by someone else (no upgrader.io/cordoned-by annotation)"})
            return
        patch: dict[str, Any] = {"metadata": {"annotations": {CORDON_ANNOTATION: None},
                                              "resourceVersion": meta.get("resourceVersion")}}
        if state == "ours":
            patch["spec"] = {"unschedulable": None}
        if patch["metadata"]["resourceVersion"] is None:
            del patch["metadata"]["resourceVersion"]
        try:
            ctx.api.patch_node(name, patch)
        except UpgraderError as e:  # 409: changed since read; read it again and judge again, once
            fresh = ctx.api.get_node(name)
            if attempt == 1 or fresh is None:
                result["changed_meanwhile"].append({"node": name, "error": e.message})
                return
            node = fresh
            continue
        by = (meta.get("annotations") or {}).get(CORDON_ANNOTATION)
        result["uncordoned" if state == "ours" else "annotation_removed"].append({"node": name, "run": by})
        return


def _uncordon_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    run = args(step).get("run")
    left = [str((n.get("metadata") or {}).get("name")) for n in ctx.api.list_nodes()
            if cordon_state(n, str(run) if run is not None else None) in ("ours", "stale")]
    return None if left else {"uncordoned": [], "note": "no node carries upgrader's cordon annotation"}


def _describe_uncordon(ctx: RunContext, step: Step) -> list[str]:
    run = args(step).get("run")
    lines = []
    try:
        nodes = ctx.api.list_nodes()
    except UpgraderError as e:
        return [f"(nodes cannot be read now: {e.message})"]
    for node in nodes:
        name = (node.get("metadata") or {}).get("name")
        state = cordon_state(node, str(run) if run is not None else None)
        by = ((node.get("metadata") or {}).get("annotations") or {}).get(CORDON_ANNOTATION)
        if state == "ours":
            lines.append(f"PATCH node {name}: spec.unschedulable=false, remove {CORDON_ANNOTATION} (run {by}), "
                         "only if unchanged since read (resourceVersion)")
        elif state == "stale":
            lines.append(f"PATCH node {name}: remove the stale {CORDON_ANNOTATION}={by} (it is schedulable)")
        elif state == "foreign":
            lines.append(f"leave node {name} cordoned: " + (f"cordoned by run {by}" if by else "cordoned by "
                                                              "someone else"))
    return lines or ["no node is cordoned: nothing to do"]


# -- actions run by a use case (services) -----------------------------------------------------------

def _served(part: str) -> Any:
    def call(ctx: RunContext, step: Step) -> Any:
        hooks = ctx.runbook
        table = getattr(hooks, part) if hooks is not None else {}
        handler = table.get(str(step.action))
        if handler is None:
            if part == "act":
                raise StepError(f"{step.action} runs only inside a runbook run (`upgrader runbook run`)")
            return None if part == "observe" else [f"{step.action}: {args(step)}"]
        return handler(ctx, step)
    return call


SERVED = (Action.ROLLBACK_UPGRADE, Action.PREVIEW_RESTORE, Action.RESTORE_SNAPSHOT, Action.RENEW_ALL_CERTIFICATES,
          Action.LEVEL_CONTROL_PLANE)

HANDLERS: dict[Action, Handler] = {
    Action.OBSERVE_CLUSTER: Handler(_observe, never, lambda c, s: [
        "read every node (kubelet version, Ready, cordoned and by whom), the control-plane pods' versions, "
        "GET /readyz, etcd endpoint health and the cluster's last runs; changes nothing"]),
    Action.WAIT_HEALTHY: Handler(_wait_healthy, never, lambda c, s: [
        "GET /readyz, every node Ready, each control-plane node's apiserver, controller-manager and "
        f"scheduler pods Running and ready, etcd endpoint health until {c.options.gate_passes} good readings in a "
        f"row (at most {args(s).get('timeout') or c.options.gate_timeout:g}s)"]),
    Action.UNCORDON_LEFT_BY_UPGRADER: Handler(_uncordon, _uncordon_observe, _describe_uncordon),
    **{action: Handler(_served("act"), _served("observe"), _served("describe")) for action in SERVED},
}
steps.HANDLERS.update(HANDLERS)
