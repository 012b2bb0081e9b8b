"""The runs part of the ledger's fake: the same fencing and transitions as upgrader.ledger.runs.

Every write that takes a fencing token is refused (LockLostError, nothing changed) unless the
cluster's lease carries that token and, but for ``claim_run``, so does the run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from upgrader import errors
from upgrader.domain.records import ClusterRecord, PlanRecord, RunRecord, RunStepRecord
from upgrader.domain.runs import FencingToken, PlanId, RunId, RunStatus, StepStatus, run_may_become, step_may_become

if TYPE_CHECKING:
    from upgrader.fakes.ledger import _State


class InMemoryRuns:
    """Runs and their steps over the fake ledger's state (a base of InMemoryRepository)."""

    _s: _State
    _clock: Callable[[], datetime]

    def get_cluster(self, name: str) -> ClusterRecord:
        raise NotImplementedError

    def get_plan(self, plan_id: int) -> PlanRecord:
        raise NotImplementedError

    def create_run(self, *, plan_id: int, started_by: str, host: str, command_line: str, token: int,
                   options: Mapping[str, Any], rollback_of: int | None = None) -> RunRecord:
        plan = self.get_plan(plan_id)
        self._check_lease(plan.cluster, token, f"start a run of plan {plan_id}")
        run_id = RunId(self._s.new_id("run"))
        now = self._clock()
        steps = tuple(RunStepRecord(n=s.n, action=s.action, node=s.node, version=s.version, batch=s.batch,
                                    status=StepStatus.PENDING, attempts=0, started_at=None, finished_at=None,
                                    outputs=None, error=None) for s in plan.steps)
        self._s.runs[run_id] = RunRecord(
            id=run_id, plan_id=PlanId(plan_id), cluster=plan.cluster, status=RunStatus.RUNNING, started_by=started_by,
            host=host, command_line=command_line, fencing_token=FencingToken(token), created_at=now, started_at=now,
            finished_at=None, options=copy.deepcopy(dict(options)), outcome=None, steps=steps,
            rollback_of=RunId(rollback_of) if rollback_of is not None else None)
        self._mark_lease(plan.cluster, token, run_id)
        return self._s.runs[run_id]

    def get_run(self, run_id: int) -> RunRecord:
        try:
            return self._linked(self._s.runs[run_id])
        except KeyError:
            raise errors.RunNotFoundError(f"no run with id {run_id} (see `upgrader runs list`)") from None

    def _linked(self, run: RunRecord) -> RunRecord:
        by = tuple(RunId(i) for i, r in sorted(self._s.runs.items()) if r.rollback_of == run.id)
        return replace(run, rolled_back_by=by)

    def list_runs(self, cluster: str | None = None, *, plan_id: int | None = None) -> list[RunRecord]:
        if cluster is not None:
            self.get_cluster(cluster)
        return [r for _, r in sorted(self._s.runs.items(), reverse=True)
                if (cluster is None or r.cluster == cluster) and (plan_id is None or r.plan_id == plan_id)]

    def claim_run(self, run_id: int, *, token: int) -> RunRecord:
        run = self.get_run(run_id)
        self._check_lease(run.cluster, token, f"claim run {run_id}")
        if run.status is not RunStatus.RUNNING and not run_may_become(run.status, RunStatus.RUNNING):
            raise errors.InvalidTransitionError(f"run {run_id} is {run.status}: only an interrupted or running run "
                                                "can be claimed")
        self._s.runs[run_id] = replace(run, status=RunStatus.RUNNING, fencing_token=FencingToken(token),
                                       finished_at=None)
        self._mark_lease(run.cluster, token, run_id)
        return self._s.runs[run_id]

    def set_run_status(self, run_id: int, status: RunStatus, *, token: int,
                       outcome: Mapping[str, Any] | None = None) -> RunRecord:
        run = self.get_run(run_id)
        self._check_lease(run.cluster, token, f"record run {run_id} as {status}", run)
        if not run_may_become(run.status, status):
            raise errors.InvalidTransitionError(f"run {run_id} is {run.status}: it cannot become {status}")
        self._s.runs[run_id] = replace(
            run, status=status, finished_at=None if status is RunStatus.RUNNING else self._clock(),
            outcome=copy.deepcopy(dict(outcome)) if outcome is not None else run.outcome)
        return self._s.runs[run_id]

    def start_step(self, run_id: int, n: int, *, token: int) -> RunStepRecord:
        step = self._step_to(run_id, n, StepStatus.RUNNING, token)
        return self._put_step(run_id, replace(step, status=StepStatus.RUNNING, attempts=step.attempts + 1,
                                              started_at=self._clock(), finished_at=None, error=None))

    def finish_step(self, run_id: int, n: int, status: StepStatus, *, token: int,
                    outputs: Mapping[str, Any] | None = None, error: str | None = None) -> RunStepRecord:
        if status not in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED):
            raise errors.InvalidTransitionError(f"a step finishes as succeeded, failed or skipped, not {status}")
        step = self._step_to(run_id, n, status, token)
        return self._put_step(run_id, replace(
            step, status=status, finished_at=self._clock(), error=error,
            outputs=copy.deepcopy(dict(outputs)) if outputs is not None else step.outputs))

    def _check_lease(self, cluster: str, token: int, doing: str, run: RunRecord | None = None) -> None:
        lease = self._s.locks.get(cluster)
        if lease is None or lease.fencing_token != token:
            held = ("nobody holds it now" if lease is None
                    else f"it is now held by {lease.holder} (token {lease.fencing_token})")
            raise errors.LockLostError(f"cannot {doing}: the lease on cluster {cluster!r} with token {token} is no "
                                       f"longer held; {held}")
        if run is not None and run.fencing_token != token:
            raise errors.LockLostError(f"cannot {doing}: run {run.id} carries token {run.fencing_token}, not "
                                       f"{token} (claim it first)")

    def _mark_lease(self, cluster: str, token: int, run_id: int) -> None:
        lease = self._s.locks.get(cluster)
        if lease is not None and lease.fencing_token == token:
            self._s.locks[cluster] = replace(lease, run_id=RunId(run_id))

    def _step_to(self, run_id: int, n: int, status: StepStatus, token: int) -> RunStepRecord:
        run = self.get_run(run_id)
        self._check_lease(run.cluster, token, f"record step {n} of run {run_id} as {status}", run)
        step = next((s for s in run.steps if s.n == n), None)
        if step is None:
            raise errors.RunNotFoundError(f"run {run_id} has no step {n}")
        if not step_may_become(step.status, status):
            raise errors.InvalidTransitionError(f"step {n} of run {run_id} is {step.status}: it cannot become {status}")
        return step

    def _put_step(self, run_id: int, step: RunStepRecord) -> RunStepRecord:
        run = self._s.runs[run_id]
        self._s.runs[run_id] = replace(run, steps=tuple(step if s.n == step.n else s for s in run.steps))
        return step
