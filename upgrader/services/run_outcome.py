"""What a stopped run leaves for the person who has to act next: what failed, kubeadm's last lines, the
snapshot to restore, the nodes this run left cordoned, and the commands to run."""

from __future__ import annotations

from typing import Any

from upgrader.domain.preflight import CORDON_ANNOTATION
from upgrader.domain.records import RunRecord
from upgrader.domain.runs import StepStatus
from upgrader.engine.context import ApplyOptions
from upgrader.engine.executor import StepFailedError
from upgrader.errors import UpgraderError
from upgrader.ports import ClusterApi
from upgrader.services.wiring import AppContext

RUNBOOK = "restore-etcd"


def cordoned_by_run(api: ClusterApi, run_id: int) -> list[str]:
    """Nodes that carry this run's cordon annotation (best effort: [] when the API does not answer)."""
    try:
        nodes = api.list_nodes()
    except UpgraderError:
        return []
    return sorted(n["metadata"]["name"] for n in nodes
                  if (n["metadata"].get("annotations") or {}).get(CORDON_ANNOTATION) == str(run_id)
                  and (n.get("spec") or {}).get("unschedulable"))


def last_snapshot(run: RunRecord) -> int | None:
    """The snapshot taken by the run's last finished snapshot step: the known-good point to go back to."""
    taken = [s.outputs.get("snapshot_id") for s in run.steps
             if s.action == "snapshot" and s.status is StepStatus.SUCCEEDED and s.outputs]
    found = [t for t in taken if isinstance(t, int)]
    return found[-1] if found else None


def failure_outcome(app: AppContext, api: ClusterApi, cluster: str, run: RunRecord, error: StepFailedError,
                    options: ApplyOptions) -> dict[str, Any]:
    step = error.step
    snapshot = last_snapshot(run)
    cordoned = cordoned_by_run(api, run.id)
    changed = any(s.status is StepStatus.SUCCEEDED and s.action not in ("preflight", "snapshot", "health-gate")
                  for s in run.steps)
    next_steps = [f"find and fix the cause, then continue: upgrader resume {run.id}"]
    if snapshot is not None and changed:
        how = ("" if options.auto_rollback else " (--no-auto-rollback was given, so nothing was rolled back)")
        next_steps.append(f"or go back to the known-good snapshot {snapshot}{how}: "
                          f"`upgrader rollback {cluster} --to {snapshot}`")
    if cordoned:
        next_steps.append(f"nodes this run cordoned stay cordoned until it finishes: {', '.join(cordoned)} "
                          f"(`kubectl uncordon NODE` to release one by hand)")
    return {
        "reason": "step failed",
        "error": error.message,
        "step": step.n,
        "action": str(step.action),
        "node": step.node,
        "output": error.tail,
        "snapshot_id": snapshot,
        "auto_rollback": options.auto_rollback,
        "cordoned_by_run": cordoned,
        "changed": changed,
        "next": next_steps,
        "cluster": cluster,
    }
