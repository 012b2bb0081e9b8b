"""The runs part of the Repository port, on SQLite, PostgreSQL and the in-memory fake alike (the same
contract as tests/integration/test_ledger_repository.py): a run copies its plan's steps, steps and
runs move only as domain.runs allows, and every write is fenced by the cluster's lease token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.test_ledger_repository import T0, StepClock, _add
from tests.integration.test_ledger_snapshots import new as new_snapshot
from upgrader import errors
from upgrader.domain.runs import RunStatus, StepStatus
from upgrader.fakes import InMemoryLedger
from upgrader.ledger import db

STEPS = [
    {"n": 1, "action": "snapshot", "node": None, "version": None, "batch": None, "reversibility": "none"},
    {"n": 2, "action": "upgrade-first-control-plane", "node": "cp-1", "version": "v1.31.4", "batch": 1,
     "reversibility": "restore"},
    {"n": 3, "action": "upgrade-worker", "node": "w-1", "version": "v1.31.4", "batch": 2,
     "reversibility": "reversible"},
]
OPTIONS = {"drain_timeout": 300, "force_drain": False, "parallel": {"workers": 2}, "skip": ["v1.30.9"]}
TTL = 300.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "memory"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryLedger(clock=StepClock())
        return
    url = str(request.getfixturevalue(f"{request.param}_url"))
    db.upgrade(url)
    with db.open_ledger(url, clock=StepClock()) as opened:
        yield opened


def _plan(ledger: Any, cluster: str = "prod") -> int:
    with ledger.unit_of_work() as uow:
        plan_id = uow.repo.save_plan(cluster=cluster, observation=None, created_by="alice", target="v1.31.4",
                                     strategy={"workers": 1}, skipped_versions=[], source_fingerprint=None,
                                     document={"steps": len(STEPS)}, steps=STEPS)
        uow.commit()
    return int(plan_id)


def _lease(ledger: Any, holder: str, *, cluster: str = "prod", at_seconds: float = 0,
           take_over: int | None = None) -> int:
    with ledger.unit_of_work() as uow:
        token = uow.repo.acquire_lock(cluster=cluster, holder=holder, ttl_seconds=TTL,
                                      now=T0 + timedelta(seconds=at_seconds), take_over=take_over)
        uow.commit()
    return int(token)


def _started(ledger: Any, *, cluster: str = "prod", holder: str = "alice@ops-1:4242") -> tuple[int, int]:
    """A cluster with a plan and a run of it under a fresh lease: (run id, token)."""
    plan_id = _plan(ledger, cluster)
    token = _lease(ledger, holder, cluster=cluster)
    with ledger.unit_of_work() as uow:
        run = uow.repo.create_run(plan_id=plan_id, started_by="alice", host="ops-1",
                                  command_line=f"upgrader apply {plan_id}", token=token, options=OPTIONS)
        uow.commit()
    return int(run.id), token


def _write(ledger: Any, action: Any) -> Any:
    with ledger.unit_of_work() as uow:
        done = action(uow.repo)
        uow.commit()
    return done


def _run(ledger: Any, run_id: int) -> Any:
    with ledger.unit_of_work() as uow:
        return uow.repo.get_run(run_id)


def test_a_run_copies_its_plans_steps_pending_and_marks_the_lease(ledger: Any) -> None:
    _add(ledger)
    run_id, token = _started(ledger)
    run = _run(ledger, run_id)
    assert (run.cluster, run.status, run.fencing_token, run.started_by, run.host) == (
        "prod", RunStatus.RUNNING, token, "alice", "ops-1")
    assert run.command_line.startswith("upgrader apply ")
    assert run.started_at is not None and run.started_at > T0 and run.finished_at is None
    assert run.options == OPTIONS and run.outcome is None
    assert [(s.n, s.action, s.node, s.version, s.batch) for s in run.steps] == [
        (s["n"], s["action"], s["node"], s["version"], s["batch"]) for s in STEPS]
    assert {(s.status, s.attempts, s.started_at, s.finished_at, s.outputs, s.error) for s in run.steps} == {
        (StepStatus.PENDING, 0, None, None, None, None)}
    with ledger.unit_of_work() as uow:
        lease = uow.repo.get_lock("prod")
    assert lease is not None and (lease.run_id, lease.fencing_token) == (run_id, token)


def test_step_lifecycle_counts_attempts_and_clears_the_last_error(ledger: Any) -> None:
    _add(ledger)
    run_id, token = _started(ledger)
    first = _write(ledger, lambda r: r.start_step(run_id, 2, token=token))
    assert (first.status, first.attempts, first.finished_at, first.error) == (StepStatus.RUNNING, 1, None, None)
    failed = _write(ledger, lambda r: r.finish_step(run_id, 2, StepStatus.FAILED, token=token,
                                                    error="kubeadm upgrade apply exited 1"))
    assert (failed.status, failed.error) == (StepStatus.FAILED, "kubeadm upgrade apply exited 1")
    assert failed.finished_at is not None and failed.finished_at > first.started_at
    retry = _write(ledger, lambda r: r.start_step(run_id, 2, token=token))
    assert (retry.status, retry.attempts, retry.finished_at, retry.error) == (StepStatus.RUNNING, 2, None, None)
    assert retry.started_at > failed.finished_at
    done = _write(ledger, lambda r: r.finish_step(run_id, 2, StepStatus.SUCCEEDED, token=token,
                                                  outputs={"apiserver": "v1.31.4", "took_s": 41.5}))
    skipped = _write(ledger, lambda r: r.finish_step(run_id, 1, StepStatus.SKIPPED, token=token))
    run = _run(ledger, run_id)
    assert run.steps[1] == done
    assert (done.status, done.attempts, done.outputs, done.error) == (
        StepStatus.SUCCEEDED, 2, {"apiserver": "v1.31.4", "took_s": 41.5}, None)
    assert (skipped.status, skipped.attempts, skipped.finished_at is not None) == (StepStatus.SKIPPED, 0, True)
    assert run.steps[2].status is StepStatus.PENDING


def test_invalid_transitions_are_refused_and_change_nothing(ledger: Any) -> None:
    _add(ledger)
    run_id, token = _started(ledger)
    _write(ledger, lambda r: r.start_step(run_id, 1, token=token))
    _write(ledger, lambda r: r.finish_step(run_id, 1, StepStatus.SUCCEEDED, token=token))
    before = _run(ledger, run_id)
    refused = [
        lambda r: r.finish_step(run_id, 2, StepStatus.SUCCEEDED, token=token),  # pending never ran
        lambda r: r.start_step(run_id, 1, token=token),  # succeeded is final
        lambda r: r.finish_step(run_id, 3, StepStatus.RUNNING, token=token),  # not a finish
        lambda r: r.finish_step(run_id, 3, StepStatus.PENDING, token=token),
        lambda r: r.set_run_status(run_id, RunStatus.PENDING, token=token),
        lambda r: r.set_run_status(run_id, RunStatus.RUNNING, token=token, outcome={"x": 1}),
    ]
    for action in refused:
        with pytest.raises(errors.InvalidTransitionError) as caught:
            _write(ledger, action)
        assert caught.value.exit_code == 1
    _write(ledger, lambda r: r.set_run_status(run_id, RunStatus.SUCCEEDED, token=token))
    for action in (lambda r: r.set_run_status(run_id, RunStatus.FAILED, token=token),
                   lambda r: r.claim_run(run_id, token=token)):
        with pytest.raises(errors.InvalidTransitionError, match=f"run {run_id} is succeeded"):
            _write(ledger, action)
    after = _run(ledger, run_id)
    assert after.steps == before.steps and after.status is RunStatus.SUCCEEDED and after.outcome is None


def test_run_status_outcome_and_options_round_trip(ledger: Any) -> None:
    _add(ledger)
    run_id, token = _started(ledger)
    outcome = {"error": "health gate failed on cp-1", "snapshot": 7, "next": ["upgrader", "rollback", "1"]}
    failed = _write(ledger, lambda r: r.set_run_status(run_id, RunStatus.FAILED, token=token, outcome=outcome))
    assert (failed.status, failed.outcome, failed.options) == (RunStatus.FAILED, outcome, OPTIONS)
    assert failed.finished_at is not None and failed.finished_at > failed.started_at
    back = _write(ledger, lambda r: r.set_run_status(run_id, RunStatus.ROLLED_BACK, token=token))
    assert back.outcome == outcome and back.finished_at > failed.finished_at  # kept when not given
    assert _run(ledger, run_id) == back


def test_an_interrupted_run_is_claimed_by_a_new_lease_and_runs_again(ledger: Any) -> None:
    _add(ledger)
    run_id, old = _started(ledger)
    stopped = _write(ledger, lambda r: r.set_run_status(run_id, RunStatus.INTERRUPTED, token=old,
                                                        outcome={"next": "upgrader resume"}))
    assert stopped.finished_at is not None
    _write(ledger, lambda r: r.release_lock(cluster="prod", token=old))
    new = _lease(ledger, "bob@ops-2:77", at_seconds=10)
    claimed = _write(ledger, lambda r: r.claim_run(run_id, token=new))
    assert (claimed.status, claimed.fencing_token, claimed.finished_at) == (RunStatus.RUNNING, new, None)
    assert claimed.started_at == stopped.started_at and claimed.options == OPTIONS
    with ledger.unit_of_work() as uow:
        assert uow.repo.get_lock("prod").run_id == run_id  # type: ignore[union-attr]
    step = _write(ledger, lambda r: r.start_step(run_id, 1, token=new))
    assert step.status is StepStatus.RUNNING


def test_a_stale_token_after_a_takeover_is_lock_lost_and_writes_nothing(ledger: Any) -> None:
    _add(ledger)
    run_id, old = _started(ledger)
    _write(ledger, lambda r: r.start_step(run_id, 1, token=old))
    before = _run(ledger, run_id)
    new = _lease(ledger, "bob@ops-2:77", at_seconds=TTL + 1)  # the old lease expired unrenewed
    stale = [
        lambda r: r.finish_step(run_id, 1, StepStatus.SUCCEEDED, token=old, outputs={"late": True}),
        lambda r: r.start_step(run_id, 2, token=old),
        lambda r: r.set_run_status(run_id, RunStatus.SUCCEEDED, token=old, outcome={"late": True}),
        lambda r: r.claim_run(run_id, token=old),
    ]
    for action in stale:
        with pytest.raises(errors.LockLostError, match=rf"now held by bob@ops-2:77 \(token {new}\)") as caught:
            _write(ledger, action)
        assert caught.value.exit_code == 7
    # The new holder's token is not the run's until it claims the run.
    with pytest.raises(errors.LockLostError, match=f"run {run_id} carries token {old}, not {new}"):
        _write(ledger, lambda r: r.finish_step(run_id, 1, StepStatus.SUCCEEDED, token=new))
    with pytest.raises(errors.LockLostError, match="nobody holds it now"):
        _write(ledger, lambda r: (r.release_lock(cluster="prod", token=new),
                                  r.start_step(run_id, 2, token=new)))
    assert _run(ledger, run_id) == before
    with ledger.unit_of_work() as uow:
        lease = uow.repo.get_lock("prod")
    assert lease is not None and (lease.holder, lease.fencing_token) == ("bob@ops-2:77", new)


def test_take_over_takes_only_the_named_dead_holders_lease(ledger: Any) -> None:
    _add(ledger)
    dead = _lease(ledger, "alice@ops-1:4242")
    for wrong in (dead - 1, dead + 100):
        with pytest.raises(errors.RunLockedError, match=f"locked by alice@ops-1:4242 \\(token {dead}"):
            _lease(ledger, "bob@ops-1:5151", at_seconds=5, take_over=wrong)
    taken = _lease(ledger, "bob@ops-1:5151", at_seconds=5, take_over=dead)
    assert taken > dead
    # The dead token names a lease that no longer exists: it cannot take bob's.
    with pytest.raises(errors.RunLockedError, match=f"locked by bob@ops-1:5151 \\(token {taken}"):
        _lease(ledger, "carol@ops-1:6161", at_seconds=6, take_over=dead)
    with ledger.unit_of_work() as uow:
        lease = uow.repo.get_lock("prod")
        assert lease is not None and (lease.holder, lease.fencing_token) == ("bob@ops-1:5151", taken)
        assert lease.expires_at == T0 + timedelta(seconds=5 + TTL)


def test_a_run_needs_the_lease_it_names(ledger: Any) -> None:
    _add(ledger)
    plan_id = _plan(ledger)
    with pytest.raises(errors.LockLostError, match="nobody holds it now"):
        _write(ledger, lambda r: r.create_run(plan_id=plan_id, started_by="a", host="h", command_line="c",
                                              token=1, options={}))
    token = _lease(ledger, "alice@ops-1:4242")
    with pytest.raises(errors.LockLostError, match=f"held by alice@ops-1:4242 \\(token {token}\\)"):
        _write(ledger, lambda r: r.create_run(plan_id=plan_id, started_by="a", host="h", command_line="c",
                                              token=token + 1, options={}))
    with ledger.unit_of_work() as uow:
        assert uow.repo.list_runs() == []


def test_runs_are_listed_newest_first_by_cluster_and_plan(ledger: Any) -> None:
    _add(ledger, "prod")
    _add(ledger, "dev")
    first, token = _started(ledger, cluster="prod")
    dev_run, _ = _started(ledger, cluster="dev")
    plan_id = _run(ledger, first).plan_id
    second = _write(ledger, lambda r: r.create_run(plan_id=plan_id, started_by="alice", host="ops-1",
                                                   command_line="upgrader apply", token=token, options={})).id
    with ledger.unit_of_work() as uow:
        assert [r.id for r in uow.repo.list_runs()] == [second, dev_run, first]
        assert [r.id for r in uow.repo.list_runs("prod")] == [second, first]
        assert [r.id for r in uow.repo.list_runs(plan_id=plan_id)] == [second, first]
        assert [r.id for r in uow.repo.list_runs("dev", plan_id=plan_id)] == []
        assert uow.repo.list_runs(plan_id=9999) == []
        assert uow.repo.list_runs("prod")[0] == uow.repo.get_run(second)
        with pytest.raises(errors.ClusterNotFoundError):
            uow.repo.list_runs("ghost")


def test_unknown_runs_plans_and_steps_are_not_found(ledger: Any) -> None:
    _add(ledger)
    run_id, token = _started(ledger)
    missing = [
        lambda r: r.get_run(404),
        lambda r: r.claim_run(404, token=token),
        lambda r: r.set_run_status(404, RunStatus.FAILED, token=token),
        lambda r: r.start_step(404, 1, token=token),
        lambda r: r.finish_step(404, 1, StepStatus.FAILED, token=token),
    ]
    for action in missing:
        with pytest.raises(errors.RunNotFoundError, match="no run with id 404") as caught:
            _write(ledger, action)
        assert caught.value.exit_code == 2
    with pytest.raises(errors.RunNotFoundError, match=f"run {run_id} has no step 9"):
        _write(ledger, lambda r: r.start_step(run_id, 9, token=token))
    with pytest.raises(errors.PlanNotFoundError):
        _write(ledger, lambda r: r.create_run(plan_id=404, started_by="a", host="h", command_line="c",
                                              token=token, options={}))


def test_an_uncommitted_run_is_never_recorded(ledger: Any) -> None:
    _add(ledger)
    plan_id = _plan(ledger)
    token = _lease(ledger, "alice@ops-1:4242")
    with pytest.raises(RuntimeError), ledger.unit_of_work() as uow:
        uow.repo.create_run(plan_id=plan_id, started_by="a", host="h", command_line="c", token=token, options={})
        raise RuntimeError("the start event could not be written")
    with ledger.unit_of_work() as uow:
        assert uow.repo.list_runs() == []
        assert uow.repo.get_lock("prod").run_id is None  # type: ignore[union-attr]


def test_removing_a_cluster_removes_its_runs(ledger: Any) -> None:
    _add(ledger, "prod")
    _add(ledger, "dev")
    gone, _ = _started(ledger, cluster="prod")
    kept, _ = _started(ledger, cluster="dev")
    _write(ledger, lambda r: r.remove_cluster("prod"))
    with ledger.unit_of_work() as uow:
        with pytest.raises(errors.RunNotFoundError):
            uow.repo.get_run(gone)
        assert [r.id for r in uow.repo.list_runs()] == [kept]
        assert len(uow.repo.get_run(kept).steps) == len(STEPS)
    if not isinstance(ledger, InMemoryLedger):
        with ledger.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM run_steps WHERE run_id = :r"),
                                {"r": gone}).scalar_one() == 0


def test_a_snapshot_is_in_use_while_its_run_is_unfinished(ledger: Any) -> None:
    _add(ledger)
    run_id, token = _started(ledger)
    held = _write(ledger, lambda r: r.add_snapshot(new_snapshot(run_id=run_id))).id
    with ledger.unit_of_work() as uow:
        assert uow.repo.snapshots_in_use("prod") == {held}
    _write(ledger, lambda r: r.set_run_status(run_id, RunStatus.SUCCEEDED, token=token))
    with ledger.unit_of_work() as uow:
        assert uow.repo.snapshots_in_use("prod") == set()


def test_a_rollbacks_run_names_the_run_it_rolls_back_and_that_run_names_it(ledger: Any) -> None:
    _add(ledger)
    failed, token = _started(ledger)
    rollback_plan = _plan(ledger)
    rollback = _write(ledger, lambda r: r.create_run(plan_id=rollback_plan, started_by="alice", host="ops-1",
                                                     command_line="upgrader rollback prod", token=token,
                                                     options={}, rollback_of=failed))
    assert rollback.rollback_of == failed and rollback.rolled_back_by == ()
    assert _run(ledger, failed).rolled_back_by == (rollback.id,) and _run(ledger, failed).rollback_of is None
    # the failed run, still carrying the lease's token, is recorded rolled back once its rollback is done
    done = _write(ledger, lambda r: r.set_run_status(failed, RunStatus.ROLLED_BACK, token=token,
                                                     outcome={"rolled_back_by": rollback.id}))
    assert done.status is RunStatus.ROLLED_BACK and done.rolled_back_by == (rollback.id,)
