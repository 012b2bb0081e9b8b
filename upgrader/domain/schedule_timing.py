"""How long plan steps take, and where a run inside a closing window must stop.

Estimates come from the ledger's history of step durations (the median of at least three recorded
runs of an action), else from a default per action. A plan's time is its serial steps summed; a
worker batch runs its nodes in parallel, so it costs its slowest node plus its node-less steps (the
batch's health gate), the way the executor runs it.

A scheduled run stops only at a safe point, and only when what follows cannot finish in the
window: before a hop (nothing of it started) or before a worker node's first step in its batch
(that node not yet drained). It never stops inside a hop's control-plane part or with a node drained.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from upgrader.domain.plans import Action, Plan, Step
from upgrader.domain.schedule_windows import require_aware

FALLBACK_STEP_SECONDS = 60.0
MIN_SAMPLES = 3

_KNOWN = {
    Action.KUBEADM_UPGRADE_APPLY: 300.0,
    Action.KUBEADM_UPGRADE_NODE: 180.0,
    Action.EMULATED_UPGRADE_APPLY: 300.0,
    Action.EMULATED_UPGRADE_NODE: 180.0,
    Action.FINALIZE_EMULATED_VERSION: 300.0,
    Action.DRAIN: 300.0,
    Action.SNAPSHOT: 60.0,
    Action.HEALTH_GATE: 120.0,
    Action.UPGRADE_KUBEADM: 60.0,
    Action.UPGRADE_KUBELET: 60.0,
    Action.UNCORDON: 10.0,
    Action.PREFLIGHT: 60.0,
    Action.POSTFLIGHT: 60.0,
}
DEFAULT_STEP_SECONDS: Mapping[str, float] = {
    str(action): _KNOWN.get(action, FALLBACK_STEP_SECONDS) for action in Action
}


def default_seconds(action: str) -> float:
    return DEFAULT_STEP_SECONDS.get(str(action), FALLBACK_STEP_SECONDS)


def step_estimates(history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Seconds per action: the median of its recorded durations when there are at least three, else
    the default. Negative or non-finite records are ignored."""
    estimates = dict(DEFAULT_STEP_SECONDS)
    for action, samples in history.items():
        usable = [float(s) for s in samples if math.isfinite(s) and s >= 0]
        estimates[str(action)] = statistics.median(usable) if len(usable) >= MIN_SAMPLES else default_seconds(action)
    return estimates


def estimate(steps: Sequence[Step], per_action: Mapping[str, float]) -> float:
    """Seconds to run ``steps`` (in plan order): serial steps add up; a batch costs its slowest node's
    steps plus its node-less steps."""
    total = 0.0
    for segment in _segments(steps):
        if isinstance(segment, Step):
            total += _seconds(segment, per_action)
        else:
            by_node, after = segment
            total += max((sum(_seconds(s, per_action) for s in node_steps) for node_steps in by_node.values()),
                         default=0.0)
            total += sum(_seconds(s, per_action) for s in after)
    return total


def _seconds(step: Step, per_action: Mapping[str, float]) -> float:
    key = str(step.action)
    return float(per_action[key]) if key in per_action else default_seconds(key)


_Batch = tuple[dict[str, list[Step]], list[Step]]  # the steps of each node, then the node-less ones


def _segments(steps: Sequence[Step]) -> list[Step | _Batch]:
    """Serial steps and batches, as the executor forms them: consecutive steps with one batch number
    are a batch (engine/executor.py ``segments``)."""
    result: list[Step | _Batch] = []
    number: int | None = None
    for step in steps:
        if step.batch is None:
            number = None
            result.append(step)
            continue
        if number != step.batch:
            number = step.batch
            result.append(({}, []))
        batch = result[-1]
        assert not isinstance(batch, Step)
        if step.node is None:
            batch[1].append(step)
        else:
            batch[0].setdefault(step.node, []).append(step)
    return result


def pause_reason(step: Step, plan: Plan, per_action: Mapping[str, float], window_end: datetime,
                 now: datetime) -> str | None:
    """Why the run must stop before ``step`` (what follows cannot end before ``window_end``), or None
    to go on. Only at a safe point; anywhere else None."""
    part = _safe_part(step, plan)
    if part is None:
        return None
    label, steps = part
    needed = estimate(steps, per_action)
    left = (require_aware(window_end) - require_aware(now)).total_seconds()
    if left >= needed:
        return None
    ends = window_end.astimezone(UTC).strftime("%H:%M UTC")
    closing = f"the window ends in {int(left // 60)} min ({ends})" if left > 0 else f"the window closed at {ends}"
    return f"{label} needs ~{math.ceil(needed / 60)} min; {closing}"


def _safe_part(step: Step, plan: Plan) -> tuple[str, list[Step]] | None:
    """The label and steps of what starts at ``step``, when ``step`` is a safe point."""
    if step.hop is not None:
        hop_steps = [s for s in plan.steps if s.hop == step.hop]
        if step.n == min(s.n for s in hop_steps):
            version = plan.hops[step.hop].version if step.hop < len(plan.hops) else step.version
            return f"hop {step.hop + 1} ({version})", hop_steps
    if step.batch is not None and step.node is not None:
        node_steps = [s for s in plan.steps if s.batch == step.batch and s.node == step.node]
        if step.n == min(s.n for s in node_steps):
            to = next((f", {s.version}" for s in node_steps if s.version), "")
            return f"node {step.node} (batch {step.batch}{to})", node_steps
    return None


def hop_starts(plan: Plan) -> dict[int, int]:
    """The step number that begins each hop: the run's safe points between hops."""
    starts: dict[int, int] = {}
    for s in plan.steps:
        if s.hop is not None and (s.hop not in starts or s.n < starts[s.hop]):
            starts[s.hop] = s.n
    return starts
