"""`apply --rehearse` on a fake cluster (tests/unit/node_world.py): the rollback to each hop's snapshot is
rehearsed in a scratch etcd right after the snapshot is taken; a failed rehearsal stops the run before
the hop, with exit 8, nothing changed and no automatic rollback; resume keeps the option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.node_world import CLUSTER, NodeWorld
from upgrader.domain.plans import Action
from upgrader.domain.runs import RunStatus, StepStatus
from upgrader.engine.context import ApplyOptions
from upgrader.services import apply

OPTIONS = ApplyOptions(gate_interval=1.0, rehearse=True)
KEYS = {"/registry/configmaps/default/kept": 100, "/registry/secrets/default/db": 200}


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    w = NodeWorld(tmp_path, control_planes=1, workers=1)
    w.app.scratch_etcd_factory = w.etcd.scratch
    w.etcd.payload += b"".join(f"/registry/entry/{i}\n".encode() for i in range(8))  # the status counts 10
    w.etcd.snapshot_keyspace = dict(KEYS)
    w.etcd.keyspace = dict(KEYS)
    return w


def _rehearsals(world: NodeWorld) -> list[tuple[int | None, dict[str, Any]]]:
    with world.ledger.unit_of_work() as uow:
        return [(e.run_id, dict(e.data or {})) for e in uow.repo.list_events(CLUSTER, limit=10_000)
                if e.kind == "rollback-rehearsed"]


def _changes(world: NodeWorld) -> list[list[str]]:
    return [argv for node in world.nodes.values() for argv in node.ran
            if argv[:2] in (["apt-get", "install"], ["kubeadm", "upgrade"]) or argv[:1] == ["kubectl"]]


def test_apply_rehearses_the_rollback_to_each_hops_snapshot_before_the_hop(world: NodeWorld) -> None:
    result = apply.apply(world.app, world.plan("v1.31"), OPTIONS)

    run = result.run
    assert run.status is RunStatus.SUCCEEDED and run.options["rehearse"] is True
    snapshot_steps = [s for s in run.steps if s.action == Action.SNAPSHOT]
    assert snapshot_steps
    taken = [s.outputs["snapshot_id"] for s in snapshot_steps]
    assert [(r, d["snapshot"], d["ok"]) for r, d in _rehearsals(world)] == [(run.id, t, True) for t in taken]
    assert all(s.outputs["rehearsed"]["ok"] and s.outputs["rehearsed"]["restored_keys"] == 2 for s in snapshot_steps)
    assert world.etcd.scratch_open == 0


def test_without_rehearse_nothing_is_rehearsed(world: NodeWorld) -> None:
    run = apply.apply(world.app, world.plan("v1.31"), ApplyOptions(gate_interval=1.0)).run
    assert run.status is RunStatus.SUCCEEDED and _rehearsals(world) == [] and world.etcd.scratches == []


def test_a_failed_rehearsal_stops_the_run_before_the_hop_and_resume_rehearses_again(world: NodeWorld) -> None:
    world.etcd.snapshot_keyspace["/registry/configmaps/default/late"] = 999_999  # newer than the snapshot
    plan_id = world.plan("v1.31")

    run = apply.apply(world.app, plan_id, OPTIONS).run

    outcome = dict(run.outcome or {})
    assert run.status is RunStatus.FAILED and world.events()[-1] == "run-failed"
    assert outcome["reason"] == "rollback rehearsal failed" and outcome["exit_code"] == 8
    assert outcome["action"] == "snapshot" and "the hop did not start" in outcome["error"]
    assert "revision: the restored etcd holds a key written at revision 999999" in outcome["error"]
    assert outcome["next"][0].startswith("the hop did not start") and "auto_rollback" in outcome
    failed = next(s for s in run.steps if s.status is StepStatus.FAILED)
    assert failed.action == Action.SNAPSHOT
    assert all(s.status is StepStatus.PENDING for s in run.steps if s.n > failed.n)
    assert _changes(world) == [] and len(world.runs()) == 1  # nothing changed; no automatic rollback run
    [(run_id, data)] = _rehearsals(world)
    assert run_id == run.id and data["ok"] is False

    del world.etcd.snapshot_keyspace["/registry/configmaps/default/late"]
    resumed = apply.resume(world.app, run.id).run  # the options are the run's: it rehearses again

    assert resumed.status is RunStatus.SUCCEEDED
    assert [d["ok"] for _, d in _rehearsals(world)] == [False] + [True] * sum(
        1 for s in resumed.steps if s.action == Action.SNAPSHOT)


def test_the_command_exits_8_for_a_failed_rehearsal(world: NodeWorld, capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from upgrader.cli.apply import _run
    from upgrader.cli.output import Output

    world.etcd.snapshot_keyspace["/registry/configmaps/default/late"] = 999_999
    result = apply.apply(world.app, world.plan("v1.31"), OPTIONS)
    with pytest.raises(typer.Exit) as e:
        _run(None, Output.TABLE, len(result.run.steps), lambda report, stop: result)  # type: ignore[arg-type]
    assert e.value.exit_code == 8
    assert f"run {result.run.id} failed: step " in capsys.readouterr().out
