"""The run a runbook levels forward or rolls back is an upgrade run of its cluster: a runbook's, a
rollback's or a certificate renewal's run named by ``--param run=N`` is refused before anything is
recorded (their destructive steps would be resumed with every confirmation given); an upgrade run
that is being, or was, rolled back is not leveled forward: rollback-last-upgrade is named instead."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.unit.node_world import CLUSTER, NodeWorld
from tests.unit.test_runbook_runs import OPTIONS, TWO_ASKS, counts
from upgrader.domain.runs import RunStatus
from upgrader.errors import UsageError
from upgrader.services import apply, runbooks


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    return NodeWorld(tmp_path, control_planes=1, workers=2, version="v1.33.6")


def stopped_upgrade(world: NodeWorld) -> int:
    """An upgrade run to v1.34 interrupted at cp-1's kubeadm install."""
    from tests.unit.test_apply_service import OPTIONS as APPLY_OPTIONS

    plan_id = world.plan("v1.34")
    stop = threading.Event()
    world.nodes["cp-1"].hook("apt-get", "install", "-y", "kubeadm=*", before=lambda argv: stop.set())
    stopped = apply.apply(world.app, plan_id, APPLY_OPTIONS, stop=stop)
    assert stopped.run.status is RunStatus.INTERRUPTED
    return stopped.run.id


def recorded_run(world: NodeWorld, kind: str, status: RunStatus = RunStatus.INTERRUPTED) -> int:
    """A run whose plan document is of ``kind`` (rollback, certificate-renewal), left ``status``."""
    with world.ledger.unit_of_work() as uow:
        token = uow.repo.acquire_lock(cluster=CLUSTER, holder="bob@ops-1:1", ttl_seconds=60, now=world.clock.now())
        plan_id = uow.repo.save_plan(cluster=CLUSTER, observation=None, created_by="bob", target="v1.33.6",
                                     strategy={}, skipped_versions=[], source_fingerprint=None,
                                     document={"kind": kind, "steps": []}, steps=[])
        run = uow.repo.create_run(plan_id=plan_id, started_by="bob", host="ops-1", command_line="upgrader",
                                  token=token, options={})
        uow.repo.claim_run(run.id, token=token)
        uow.repo.set_run_status(run.id, status, token=token, outcome={"reason": "test"})
        uow.repo.release_lock(cluster=CLUSTER, token=token)
        uow.commit()
    return int(run.id)


def paused_runbook_run(world: NodeWorld, extra: Path) -> int:
    (extra / "two-asks.yaml").write_text(TWO_ASKS)
    previewed = runbooks.preview(world.app, "two-asks", CLUSTER, {}, extra=extra)
    stopped = runbooks.run(world.app, previewed, confirm=lambda step, lines: False, options=OPTIONS)
    assert stopped.run.status is RunStatus.INTERRUPTED
    return stopped.run.id


@pytest.mark.parametrize("runbook", ["kubeadm-upgrade-interrupted", "rollback-last-upgrade"])
def test_a_run_that_is_not_an_upgrade_is_refused_before_anything_is_recorded(
        world: NodeWorld, tmp_path: Path, runbook: str) -> None:
    extra = tmp_path / "runbooks"
    extra.mkdir()
    others = {"a runbook run": paused_runbook_run(world, extra),
              "a rollback run": recorded_run(world, "rollback"),
              "a certificate-renewal run": recorded_run(world, "certificate-renewal")}
    before = counts(world)
    for said, run_id in others.items():
        with pytest.raises(UsageError, match=f"run {run_id} is {said}, not an upgrade run"):
            runbooks.preview(world.app, runbook, CLUSTER, {"run": str(run_id)})
    assert counts(world) == before
    assert world.run(others["a runbook run"]).status is RunStatus.INTERRUPTED  # not resumed


def test_an_upgrade_run_named_by_its_id_is_leveled(world: NodeWorld) -> None:
    run_id = stopped_upgrade(world)
    previewed = runbooks.preview(world.app, "kubeadm-upgrade-interrupted", CLUSTER, {"run": str(run_id)})
    done = runbooks.run(world.app, previewed, yes=True, options=OPTIONS)
    assert done.run.status is RunStatus.SUCCEEDED, done.run.outcome
    assert world.run(run_id).status is RunStatus.SUCCEEDED


def fail_with(world: NodeWorld, run_id: int, outcome: dict[str, Any]) -> None:
    with world.ledger.unit_of_work() as uow:
        token = uow.repo.acquire_lock(cluster=CLUSTER, holder="bob@ops-1:1", ttl_seconds=60, now=world.clock.now())
        uow.repo.claim_run(run_id, token=token)
        uow.repo.set_run_status(run_id, RunStatus.FAILED, token=token, outcome=outcome)
        uow.repo.release_lock(cluster=CLUSTER, token=token)
        uow.commit()


@pytest.mark.parametrize("named", [False, True])
def test_an_upgrade_whose_automatic_rollback_started_is_not_leveled_forward(world: NodeWorld, named: bool) -> None:
    run_id = stopped_upgrade(world)
    fail_with(world, run_id, {"reason": "gate failed", "auto_rollback": {"ok": False, "run": 99, "status": "failed"}})
    before = counts(world)
    with pytest.raises(UsageError, match=rf"upgrade run {run_id} is not leveled forward: its automatic rollback "
                                         r"\(run 99\) started and failed; .*rollback-last-upgrade --cluster prod"):
        runbooks.preview(world.app, "kubeadm-upgrade-interrupted", CLUSTER, {"run": str(run_id)} if named else {})
    assert counts(world) == before


def test_an_upgrade_with_a_newer_rollback_run_is_not_leveled_forward(world: NodeWorld) -> None:
    run_id = stopped_upgrade(world)
    rollback = recorded_run(world, "rollback", RunStatus.FAILED)
    said = f"upgrade run {run_id} is not leveled forward: rollback run {rollback} started after it"
    with pytest.raises(UsageError, match=said):
        runbooks.preview(world.app, "kubeadm-upgrade-interrupted", CLUSTER, {})


def test_a_rollback_started_between_preview_and_run_fails_the_step_and_leaves_the_upgrade(world: NodeWorld) -> None:
    run_id = stopped_upgrade(world)
    previewed = runbooks.preview(world.app, "kubeadm-upgrade-interrupted", CLUSTER, {})
    recorded_run(world, "rollback", RunStatus.FAILED)
    failed = runbooks.run(world.app, previewed, yes=True, options=OPTIONS)
    assert failed.run.status is RunStatus.FAILED
    assert "rollback-last-upgrade" in (failed.run.outcome or {})["error"]
    assert world.run(run_id).status is RunStatus.INTERRUPTED  # not resumed
