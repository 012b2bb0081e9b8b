"""The run vocabulary: ids, run and step statuses, and which status may follow which.

A run is recorded ``running`` before its first side effect and reaches exactly one end state; a step
is recorded ``running`` before it acts and ``succeeded`` after (ARCHITECTURE.md, "The ledger"). The
ledger stores these values as lowercase strings under CHECK constraints; the engine asks
:func:`run_may_become` / :func:`step_may_become` before it writes a transition, so a bug cannot
record a finished run as running again.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

PlanId = NewType("PlanId", int)
RunId = NewType("RunId", int)
ObservationId = NewType("ObservationId", int)
EventId = NewType("EventId", int)
FencingToken = NewType("FencingToken", int)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


# An interrupted run resumes (running again); a failed one can be resumed once its cause is fixed, or rolled
# back; the others are final.
_RUN_NEXT: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INTERRUPTED,
                                  RunStatus.ROLLED_BACK}),
    RunStatus.INTERRUPTED: frozenset({RunStatus.RUNNING, RunStatus.FAILED}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING, RunStatus.ROLLED_BACK}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.ROLLED_BACK: frozenset(),
}

# A step found running on resume is observed and then completed or retried (running again);
# a failed step may be retried; succeeded and skipped are final.
_STEP_NEXT: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset({StepStatus.RUNNING, StepStatus.SKIPPED}),
    StepStatus.RUNNING: frozenset({StepStatus.RUNNING, StepStatus.SUCCEEDED, StepStatus.FAILED}),
    StepStatus.FAILED: frozenset({StepStatus.RUNNING}),
    StepStatus.SUCCEEDED: frozenset(),
    StepStatus.SKIPPED: frozenset(),
}

FINAL_RUN_STATUSES = frozenset(s for s, after in _RUN_NEXT.items() if not after)


def run_may_become(current: RunStatus, new: RunStatus) -> bool:
    """Whether a run in ``current`` may be recorded as ``new``."""
    return new in _RUN_NEXT[current]


def step_may_become(current: StepStatus, new: StepStatus) -> bool:
    """Whether a step in ``current`` may be recorded as ``new``."""
    return new in _STEP_NEXT[current]
