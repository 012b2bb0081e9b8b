"""The runs' rows: a run of a plan and its steps, written only under the cluster's lease.

SqlRepository delegates here so that the repository module stays readable. Every write that takes a
fencing token first reads the cluster's lease in the same transaction and refuses (LockLostError,
nothing written) unless the lease still carries that token and, but for ``claim``, so does the run:
a run whose lease was taken over stops instead of racing the new holder. On PostgreSQL the lease is
read ``FOR SHARE``, so a takeover (an upsert of that row) waits until our write commits, and ours
sees a takeover that committed first; SQLite's ``BEGIN IMMEDIATE`` already serialises the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from upgrader import errors
from upgrader.domain.records import RunRecord, RunStepRecord
from upgrader.domain.runs import FencingToken, PlanId, RunId, RunStatus, StepStatus, run_may_become, step_may_become
from upgrader.ledger.models import Cluster, ClusterLock, Plan, PlanStep, Run, RunStep

_FINISHED_STEP = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED})


def create(session: Session, *, plan_id: int, started_by: str, host: str, command_line: str, token: int,
           options: Mapping[str, Any], now: datetime, rollback_of: int | None = None) -> RunRecord:
    """A running run of the plan with a pending copy of each plan step, under the lease ``token``;
    the lease is marked as this run's."""
    found = session.execute(sa.select(Plan.cluster_id, Cluster.name).join(Cluster, Cluster.id == Plan.cluster_id)
                            .where(Plan.id == plan_id)).one_or_none()
    if found is None:
        raise errors.PlanNotFoundError(f"no plan with id {plan_id} (see `upgrader plans list`)")
    cluster_id, cluster = found
    _check_lease(session, cluster=cluster, token=token, doing=f"start a run of plan {plan_id}")
    run_id = int(session.execute(sa.insert(Run).values(
        plan_id=plan_id, cluster_id=cluster_id, status=RunStatus.RUNNING.value, started_by=started_by, host=host,
        command_line=command_line, fencing_token=token, created_at=now, started_at=now, finished_at=None,
        options=dict(options), outcome=None, rollback_of=rollback_of,
    ).returning(Run.id)).scalar_one())
    # One INSERT .. SELECT: a plan for a large fleet has 10^5 steps, none of which need to pass through Python.
    copied = sa.select(sa.literal(run_id), PlanStep.n, PlanStep.action, PlanStep.node, PlanStep.version,
                       PlanStep.batch, sa.literal(StepStatus.PENDING.value), sa.literal(0)
                       ).where(PlanStep.plan_id == plan_id)
    session.execute(sa.insert(RunStep).from_select(
        ["run_id", "n", "action", "node", "version", "batch", "status", "attempts"], copied))
    _mark_lease(session, cluster=cluster, token=token, run_id=run_id)
    return get(session, run_id)


def get(session: Session, run_id: int) -> RunRecord:
    found = session.execute(_runs().where(Run.id == run_id)).one_or_none()
    if found is None:
        raise errors.RunNotFoundError(f"no run with id {run_id} (see `upgrader runs list`)")
    by = session.execute(sa.select(Run.id).where(Run.rollback_of == run_id).order_by(Run.id)).scalars().all()
    return record(found[0], cluster=found[1], rolled_back_by=tuple(RunId(i) for i in by))


def list_(session: Session, *, cluster_id: int | None, plan_id: int | None) -> list[RunRecord]:
    query = _runs().order_by(Run.id.desc())
    if cluster_id is not None:
        query = query.where(Run.cluster_id == cluster_id)
    if plan_id is not None:
        query = query.where(Run.plan_id == plan_id)
    return [record(row, cluster=name) for row, name in session.execute(query)]


def claim(session: Session, run_id: int, *, token: int) -> RunRecord:
    """``resume``: an interrupted run, or a running one whose holder died, carries ``token`` and runs again."""
    run, cluster = _row(session, run_id)
    _check_lease(session, cluster=cluster, token=token, doing=f"claim run {run_id}")
    current = RunStatus(run.status)
    if current is not RunStatus.RUNNING and not run_may_become(current, RunStatus.RUNNING):
        raise errors.InvalidTransitionError(f"run {run_id} is {current}: only an interrupted or running run "
                                            "can be claimed")
    _update_run(session, run_id, status=RunStatus.RUNNING.value, fencing_token=token, finished_at=None)
    _mark_lease(session, cluster=cluster, token=token, run_id=run_id)
    return get(session, run_id)


def set_status(session: Session, run_id: int, status: RunStatus, *, token: int, outcome: Mapping[str, Any] | None,
               now: datetime) -> RunRecord:
    run, cluster = _row(session, run_id)
    _check_lease(session, cluster=cluster, token=token, doing=f"record run {run_id} as {status}", run=run)
    current = RunStatus(run.status)
    if not run_may_become(current, status):
        raise errors.InvalidTransitionError(f"run {run_id} is {current}: it cannot become {status}")
    values: dict[str, Any] = {"status": status.value, "finished_at": None if status is RunStatus.RUNNING else now}
    if outcome is not None:
        values["outcome"] = dict(outcome)
    _update_run(session, run_id, **values)
    return get(session, run_id)


def start_step(session: Session, run_id: int, n: int, *, token: int, now: datetime) -> RunStepRecord:
    step = _step_to(session, run_id, n, StepStatus.RUNNING, token=token)
    _update_step(session, run_id, n, status=StepStatus.RUNNING.value, attempts=step.attempts + 1, started_at=now,
                 finished_at=None, error=None)
    return _step(session, run_id, n)


def finish_step(session: Session, run_id: int, n: int, status: StepStatus, *, token: int,
                outputs: Mapping[str, Any] | None, error: str | None, now: datetime) -> RunStepRecord:
    if status not in _FINISHED_STEP:
        raise errors.InvalidTransitionError(f"a step finishes as succeeded, failed or skipped, not {status}")
    _step_to(session, run_id, n, status, token=token)
    values: dict[str, Any] = {"status": status.value, "finished_at": now, "error": error}
    if outputs is not None:
        values["outputs"] = dict(outputs)
    _update_step(session, run_id, n, **values)
    return _step(session, run_id, n)


def record(row: Run, *, cluster: str, rolled_back_by: tuple[RunId, ...] = ()) -> RunRecord:
    return RunRecord(
        id=RunId(row.id),
        plan_id=PlanId(row.plan_id),
        cluster=cluster,
        status=RunStatus(row.status),
        started_by=row.started_by,
        host=row.host,
        command_line=row.command_line,
        fencing_token=FencingToken(row.fencing_token),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        options=row.options,
        outcome=row.outcome,
        steps=tuple(step_record(s) for s in row.steps),
        rollback_of=RunId(row.rollback_of) if row.rollback_of is not None else None,
        rolled_back_by=rolled_back_by,
    )


def step_record(row: RunStep) -> RunStepRecord:
    return RunStepRecord(n=row.n, action=row.action, node=row.node, version=row.version, batch=row.batch,
                         status=StepStatus(row.status), attempts=row.attempts, started_at=row.started_at,
                         finished_at=row.finished_at, outputs=row.outputs, error=row.error)


# helpers ------------------------------------------------------------------------------------


def _runs() -> sa.Select[Run, str]:
    return (sa.select(Run, Cluster.name).join(Cluster, Cluster.id == Run.cluster_id)
            .options(selectinload(Run.steps)).execution_options(populate_existing=True))


def _row(session: Session, run_id: int) -> tuple[Run, str]:
    found = session.execute(sa.select(Run, Cluster.name).join(Cluster, Cluster.id == Run.cluster_id)
                            .where(Run.id == run_id).execution_options(populate_existing=True)).one_or_none()
    if found is None:
        raise errors.RunNotFoundError(f"no run with id {run_id} (see `upgrader runs list`)")
    return found[0], found[1]


def _check_lease(session: Session, *, cluster: str, token: int, doing: str, run: Run | None = None) -> None:
    """Refuse (LockLostError) unless the cluster's lease carries ``token`` and so does ``run``, if given."""
    lease = session.execute(
        sa.select(ClusterLock.holder, ClusterLock.fencing_token).where(ClusterLock.cluster_name == cluster)
        .with_for_update(read=True)  # FOR SHARE on PostgreSQL; SQLite holds the whole write lock already
    ).one_or_none()
    if lease is None or lease.fencing_token != token:
        held = ("nobody holds it now" if lease is None
                else f"it is now held by {lease.holder} (token {lease.fencing_token})")
        raise errors.LockLostError(f"cannot {doing}: the lease on cluster {cluster!r} with token {token} is no "
                                   f"longer held; {held}")
    if run is not None and run.fencing_token != token:
        raise errors.LockLostError(f"cannot {doing}: run {run.id} carries token {run.fencing_token}, not {token} "
                                   f"(claim it first)")


def _mark_lease(session: Session, *, cluster: str, token: int, run_id: int) -> None:
    session.execute(sa.update(ClusterLock).where(ClusterLock.cluster_name == cluster,
                                                 ClusterLock.fencing_token == token)
                    .values(run_id=run_id).execution_options(synchronize_session=False))


def _step_to(session: Session, run_id: int, n: int, status: StepStatus, *, token: int) -> RunStep:
    """The step, once the lease and the transition from its current status to ``status`` are checked."""
    run, cluster = _row(session, run_id)
    _check_lease(session, cluster=cluster, token=token, doing=f"record step {n} of run {run_id} as {status}", run=run)
    step = session.get(RunStep, (run_id, n), populate_existing=True)
    if step is None:
        raise errors.RunNotFoundError(f"run {run_id} has no step {n}")
    current = StepStatus(step.status)
    if not step_may_become(current, status):
        raise errors.InvalidTransitionError(f"step {n} of run {run_id} is {current}: it cannot become {status}")
    return step


def _step(session: Session, run_id: int, n: int) -> RunStepRecord:
    step = session.get(RunStep, (run_id, n), populate_existing=True)
    assert step is not None, "the step was just written"
    return step_record(step)


def _update_run(session: Session, run_id: int, **values: Any) -> None:
    session.execute(sa.update(Run).where(Run.id == run_id).values(**values)
                    .execution_options(synchronize_session=False))


def _update_step(session: Session, run_id: int, n: int, **values: Any) -> None:
    session.execute(sa.update(RunStep).where(RunStep.run_id == run_id, RunStep.n == n).values(**values)
                    .execution_options(synchronize_session=False))
