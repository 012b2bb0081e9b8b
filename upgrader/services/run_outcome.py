"""What a stopped run leaves for the person who has to act next: what failed, kubeadm's last lines, the
snapshot to restore, the nodes this run left cordoned, the incident runbook the failure calls for
(domain/runbook_hints.py), and the commands to run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from upgrader.domain.preflight import CORDON_ANNOTATION
from upgrader.domain.records import RunRecord
from upgrader.domain.runbook_hints import (
    EtcdHealth,
    FailedStep,
    RunbookHint,
    hint_for,
    restore_hint,
    uncordon_hint,
)
from upgrader.domain.runs import StepStatus
from upgrader.engine.context import ApplyOptions
from upgrader.engine.executor import StepFailedError
from upgrader.errors import UpgraderError
from upgrader.ports import ClusterApi
from upgrader.services.etcd_access import EtcdSession
from upgrader.services.wiring import AppContext


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


def failed_step(error: StepFailedError) -> FailedStep:
    step = error.step
    return FailedStep(action=str(step.action), node=step.node, error=error.message, output=error.tail,
                      version=str(step.version) if step.version else None, found_running=error.found_running)


def etcd_health(session: EtcdSession | None) -> EtcdHealth | None:
    """etcd's members as they answer now (None when they cannot be asked)."""
    if session is None:
        return None
    try:
        members = session.members(timeout=5.0)
    except UpgraderError:
        return None
    unhealthy = tuple(sorted(m.name or m.id for m in members if not m.healthy))
    return EtcdHealth(healthy=len(members) - len(unhealthy), total=len(members), unhealthy=unhealthy)


def with_runbooks(outcome: dict[str, Any], hints: Sequence[RunbookHint | None], cluster: str) -> dict[str, Any]:
    """The outcome naming the runbooks the failure calls for: ``runbook`` the first (the one to follow),
    ``runbooks`` all of them, and a line in ``next`` for each with the command to run it."""
    found = [h for h in hints if h is not None]
    if not found:
        return outcome
    entries = [h.to_dict(cluster) for h in found]
    lines = [f"runbook {h.name}: {h.why}: `{e['command']}`" for h, e in zip(found, entries, strict=True)]
    return outcome | {"runbook": entries[0], "runbooks": entries, "next": [*outcome.get("next", []), *lines]}


def restore_entry(cluster: str, snapshot_id: object) -> dict[str, object]:
    """What a failed rollback leaves to a person: restoring etcd from the snapshot by hand, step by step."""
    snapshot = int(snapshot_id) if isinstance(snapshot_id, (int, str)) and str(snapshot_id).isdigit() else None
    return restore_hint(snapshot, "the rollback stopped part way; nothing was deleted").to_dict(cluster)


def failure_outcome(app: AppContext, api: ClusterApi, cluster: str, run: RunRecord, error: StepFailedError,
                    options: ApplyOptions, *, etcd: EtcdSession | None = None) -> dict[str, Any]:
    """``etcd``: the run's session, asked for its members only when the failure mentions etcd."""
    step = error.step
    snapshot = last_snapshot(run)
    cordoned = cordoned_by_run(api, run.id)
    failed = failed_step(error)
    health = etcd_health(etcd) if "etcd" in f"{failed.error}\n{failed.output or ''}" else None
    hint = hint_for(failed, health, snapshot_id=snapshot)
    changed = any(s.status is StepStatus.SUCCEEDED and s.action not in ("preflight", "snapshot", "health-gate", "check")
                  for s in run.steps)
    next_steps = [f"find and fix the cause, then continue: upgrader resume {run.id}"]
    if snapshot is not None and changed:
        how = ("" if options.auto_rollback else " (--no-auto-rollback was given, so nothing was rolled back)")
        next_steps.append(f"or go back to the known-good snapshot {snapshot}{how}: "
                          f"`upgrader rollback {cluster} --to {snapshot}`")
    if cordoned:
        next_steps.append(f"nodes this run cordoned stay cordoned until it finishes: {', '.join(cordoned)} "
                          f"(`kubectl uncordon NODE` to release one by hand)")
    outcome = {
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
    return with_runbooks(outcome, [hint, uncordon_hint(run.id, cordoned)], cluster)
