"""The run executor: record ``running`` -> act -> record ``succeeded`` (or ``failed``), step by step.

Serial steps run in plan order. A worker batch (consecutive steps sharing a ``batch`` number) runs its
nodes concurrently, one thread per node (the planner put at most ``--max-unavailable`` nodes in a
batch), each node's steps in order; the batch's node-less steps (its health gate) run once every node
is done. When a step fails, the other nodes of the batch finish the step they are in and stop.

Every step write carries the run's fencing token (the ledger refuses a stale one), so a run whose
lease was taken over stops at its next write. A step found ``running`` (the process died in it) is
first observed: when its effect is already there it is recorded ``succeeded`` without acting again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from upgrader.domain.plans import Step
from upgrader.domain.records import RunStepRecord
from upgrader.domain.runs import StepStatus
from upgrader.engine.context import (
    PausedError,
    RunContext,
    SoakPendingError,
    StepCommandError,
    StepEvent,
    StopRequestedError,
)
from upgrader.engine.steps import HANDLERS
from upgrader.errors import LockLostError, UpgraderError

DONE = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


class StepFailedError(UpgraderError):
    """A step failed; the run stops (the service decides what comes next)."""

    exit_code = 6

    def __init__(self, step: Step, cause: BaseException, tail: str | None = None, *,
                 found_running: bool = False) -> None:
        # found_running: a killed process had left the step `running` and this attempt retried it
        self.step, self.cause, self.tail, self.found_running = step, cause, tail, found_running
        message = cause.message if isinstance(cause, UpgraderError) else f"{type(cause).__name__}: {cause}"
        where = f" on {step.node}" if step.node else ""
        super().__init__(f"step {step.n} ({step.action}{where}) failed: {message}")


@dataclass
class Batch:
    number: int
    by_node: dict[str, list[Step]] = field(default_factory=dict)
    after: list[Step] = field(default_factory=list)


def segments(steps: tuple[Step, ...]) -> Iterator[Step | Batch]:
    """The plan as serial steps and worker batches, in order."""
    batch: Batch | None = None
    for step in steps:
        if step.batch is None:
            if batch is not None:
                yield batch
                batch = None
            yield step
            continue
        if batch is not None and batch.number != step.batch:
            yield batch
            batch = None
        if batch is None:
            batch = Batch(step.batch)
        if step.node is None:
            batch.after.append(step)
        else:
            batch.by_node.setdefault(step.node, []).append(step)
    if batch is not None:
        yield batch


def execute(ctx: RunContext, records: Mapping[int, RunStepRecord]) -> None:
    """Run every step not yet done; StepFailedError, StopRequestedError or LockLostError stop it."""
    for segment in segments(ctx.plan.steps):
        if isinstance(segment, Step):
            run_step(ctx, segment, records[segment.n])
        else:
            _run_batch(ctx, segment, records)


def _run_batch(ctx: RunContext, batch: Batch, records: Mapping[int, RunStepRecord]) -> None:
    failed = threading.Event()

    paused: list[PausedError] = []

    def one_node(steps: list[Step]) -> None:
        for step in steps:
            if failed.is_set():
                return
            try:
                run_step(ctx, step, records[step.n])
            except PausedError as e:  # before this node's next step: the other nodes finish theirs
                paused.append(e)
                return
            except BaseException:
                failed.set()
                raise

    if any(records[s.n].status not in DONE for steps in batch.by_node.values() for s in steps):
        pool = ThreadPoolExecutor(max_workers=max(1, len(batch.by_node)), thread_name_prefix="node")
        try:
            futures = [pool.submit(one_node, steps) for steps in batch.by_node.values()]
            errors = [f.exception() for f in futures]
        except BaseException:  # Ctrl-C twice, SIGTERM: the nodes finish the step they are in, start no other
            failed.set()
            raise
        finally:
            pool.shutdown(wait=True)
        raised = [e for e in errors if e is not None]
        if raised:  # the most telling first: a lost lease, then an interruption, then a failure
            raised.sort(key=lambda e: (not isinstance(e, LockLostError), not isinstance(e, StopRequestedError)))
            raise raised[0]
        if paused:
            raise paused[0]
    for step in batch.after:
        run_step(ctx, step, records[step.n])


def run_step(ctx: RunContext, step: Step, record: RunStepRecord) -> None:
    if record.status in DONE:
        return
    if ctx.stop.is_set():
        raise StopRequestedError
    if record.status is StepStatus.PENDING and ctx.pause is not None:
        reason = ctx.pause(step)
        if reason is not None:
            raise PausedError(step, reason)
    handler = HANDLERS[step.action]
    found_running = record.status is StepStatus.RUNNING
    if found_running:  # the process died in this step: did it take effect?
        try:
            seen = handler.observe(ctx, step)
        except UpgraderError:
            seen = None  # cannot tell: act again (every step is idempotent)
        if seen is not None:
            _finish(ctx, step, StepStatus.SUCCEEDED, {"observed": True, **seen}, None, "observed")
            return
    ctx.timer.reset()
    started = ctx.clock.monotonic()  # the step's wall time includes its `running` write (ledger_ms)
    with ctx.counting("ledger"):
        _write(ctx, lambda repo: repo.start_step(ctx.run_id, step.n, token=ctx.token))
    ctx.report(_event(ctx, step, "running"))
    try:
        outputs = handler.act(ctx, step)
    except StopRequestedError:
        _finish(ctx, step, StepStatus.FAILED, _timing(ctx, started), "interrupted by the operator", "failed")
        raise
    except LockLostError:
        raise
    except SoakPendingError as e:  # the run pauses; the step stays `running` until finalize ends the soak
        ctx.report(_event(ctx, step, "soaking", str(e)))
        raise
    except UpgraderError as e:
        tail = e.tail() if isinstance(e, StepCommandError) else None
        outputs = _timing(ctx, started) | ({"output": tail} if tail else {})
        _finish(ctx, step, StepStatus.FAILED, outputs, e.message, "failed")
        raise StepFailedError(step, e, tail, found_running=found_running) from e
    except Exception as e:  # a bug: record it, then let it surface (exit 1 with --debug's traceback)
        _finish(ctx, step, StepStatus.FAILED, _timing(ctx, started), f"{type(e).__name__}: {e}", "failed")
        raise
    _finish(ctx, step, StepStatus.SUCCEEDED, {**outputs, **_timing(ctx, started)}, None, "succeeded")


def _timing(ctx: RunContext, started: float) -> dict[str, Any]:
    """Where the step's time went, in ms. wall - node - wait is upgrader's own overhead; api and ledger
    are the parts of it spent in cluster API calls and in the step's `running` write. The write of the
    outcome that carries these figures comes after them: it is not in wall_ms."""
    timer = ctx.timer
    spent = {"wall": ctx.clock.monotonic() - started, "node": timer.node, "wait": timer.wait, "api": timer.api,
             "ledger": timer.ledger}
    return {"timing": {f"{k}_ms": round(v * 1000, 1) for k, v in spent.items()}}


def _finish(ctx: RunContext, step: Step, status: StepStatus, outputs: dict[str, Any], error: str | None,
            shown: str) -> None:
    _write(ctx, lambda repo: repo.finish_step(ctx.run_id, step.n, status, token=ctx.token, outputs=outputs,
                                              error=error))
    ctx.report(_event(ctx, step, shown, error or ""))


def _write(ctx: RunContext, change: Any) -> None:
    with ctx.unit_of_work() as uow:
        change(uow.repo)
        uow.commit()


def _event(ctx: RunContext, step: Step, status: str, detail: str = "") -> StepEvent:
    return StepEvent(run_id=ctx.run_id, n=step.n, action=str(step.action), node=step.node,
                     version=str(step.version) if step.version else None, status=status, detail=detail)
