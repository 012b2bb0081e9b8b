"""Playbook steps in a run on the fake cluster (tests/unit/node_world.py): a copy's check runs on every node
of its role in plan order, a failing check or command stops the run with its output recorded, and on
resume a check runs again while a non-idempotent command waits for a person."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.node_world import CLUSTER, NodeWorld
from tests.unit.test_engine_executor import Run, start
from upgrader.domain.plans import Action
from upgrader.domain.runs import StepStatus
from upgrader.engine.executor import StepFailedError
from upgrader.engine.steps import HANDLERS
from upgrader.errors import PlaybookError
from upgrader.ports import CommandResult
from upgrader.services.plans import PlanRequest, make_plan
from upgrader.services.playbooks import shipped_upgrade_dir

PROBE = """    - name: probe-before-drain
      action: check
      with: {argv: [probe, "{node}", "{version}"], retries: 2, interval: 7}
"""


def _copy(tmp: Path, *, worker: str = PROBE, control: str = "", first: str = "") -> Path:
    """A playbook copy: each role's shipped file with ``text`` inserted before its drain step."""
    folder = tmp / "books"
    folder.mkdir()
    for role, text in (("worker", worker), ("control-plane", control), ("first-control-plane", first)):
        shipped = (shipped_upgrade_dir() / f"{role}.yaml").read_text()
        (folder / f"{role}.yaml").write_text(shipped.replace("    - name: drain\n", text + "    - name: drain\n"))
    return folder


def _run(world: NodeWorld, books: Path) -> Run:
    made = make_plan(world.app, PlanRequest(cluster=CLUSTER, target="v1.31", state=None, catalog=None,
                                            playbooks=str(books)))
    assert made.plan_id is not None
    return start(world, made.plan_id)


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    return NodeWorld(tmp_path, control_planes=2, workers=2)


def _steps(run: Run, action: Action) -> list:
    return [s for s in run.ctx.plan.steps if s.action is action]


def test_an_added_check_runs_on_every_node_in_plan_order_before_its_drain(world: NodeWorld, tmp_path: Path) -> None:
    run = _run(world, _copy(tmp_path, control=PROBE.replace("probe-before", "cp-probe-before"),
                            first=PROBE.replace("probe-before", "first-probe-before")))
    for node in world.nodes.values():
        node.answer("probe", result=CommandResult(0, f"{node.name} fine\n", ""))
    run.execute()
    checks = _steps(run, Action.CHECK)
    assert [s.node for s in checks] == ["cp-1", "cp-2", "w-1", "w-2"]
    records = run.records()
    assert all(records[s.n].status is StepStatus.SUCCEEDED for s in run.ctx.plan.steps)
    for check in checks:
        assert records[check.n].outputs["attempts"] == [{"attempt": 1, "ok": True,
                                                         "output": f"exit 0\n{check.node} fine"}]
        assert records[check.n + 1].action == "drain" and records[check.n + 1].node == check.node
        assert ["probe", check.node, "v1.31.14"] in world.nodes[check.node].ran
    running = [e.n for e in run.events if e.status == "running" and e.action == "check"]
    assert running == [s.n for s in checks]


def test_a_failing_check_stops_the_run_with_every_attempt_recorded(world: NodeWorld, tmp_path: Path) -> None:
    run = _run(world, _copy(tmp_path))
    world.nodes["w-1"].answer("probe", result=CommandResult(1, "", "endpoint not ready\n"))
    with pytest.raises(StepFailedError) as caught:
        run.execute()
    assert caught.value.exit_code == 6
    check = next(s for s in _steps(run, Action.CHECK) if s.node == "w-1")
    record = run.records()[check.n]
    assert record.status is StepStatus.FAILED
    assert "did not pass in 3 attempt(s): endpoint not ready" in record.error
    assert [a["attempt"] for a in record.outputs["attempts"]] == [1, 2, 3]
    assert not any(a["ok"] for a in record.outputs["attempts"])
    assert record.outputs["output"] == "exit 1\nendpoint not ready"
    assert world.clock.slept.count(7.0) >= 2
    assert run.records()[check.n + 1].status is StepStatus.PENDING  # w-1 was never drained
    assert not world.nodes["w-1"].ran_any("systemctl", "restart")


def test_an_http_check_on_the_api_passes_once_it_answers_2xx(world: NodeWorld, tmp_path: Path) -> None:
    http = """    - name: app-healthy
      action: check
      with: {http: /api/v1/namespaces/shop/services/web/proxy/healthz, retries: 3, interval: 1}
"""
    run = _run(world, _copy(tmp_path, worker=http))
    world.api.paths["/api/v1/namespaces/shop/services/web/proxy/healthz"] = [(503, "warming up"), (200, "ok")]
    run.execute()
    first = _steps(run, Action.CHECK)[0]
    attempts = run.records()[first.n].outputs["attempts"]
    assert [(a["ok"], a["output"].splitlines()[0]) for a in attempts] == [(False, "HTTP 503"), (True, "HTTP 200")]


def test_a_failing_command_fails_its_step_with_its_output(world: NodeWorld, tmp_path: Path) -> None:
    hook = """    - name: notify
      action: command
      with: {argv: [notify-pager, "{node}"], timeout: 20}
"""
    run = _run(world, _copy(tmp_path, worker=hook))
    world.nodes["w-1"].answer("notify-pager", result=CommandResult(2, "", "pager: no route\n"))
    with pytest.raises(StepFailedError) as caught:
        run.execute()
    step = next(s for s in _steps(run, Action.COMMAND) if s.node == "w-1")
    assert caught.value.step == step and caught.value.exit_code == 6
    record = run.records()[step.n]
    assert record.status is StepStatus.FAILED and record.outputs["output"] == "pager: no route"


def test_resume_runs_an_interrupted_check_again_but_asks_a_person_about_a_non_idempotent_command(
        world: NodeWorld, tmp_path: Path) -> None:
    hook = """    - name: bump-counter
      action: command
      with: {argv: [bump, "{node}"], idempotent: false}
"""
    run = _run(world, _copy(tmp_path, worker=PROBE + hook))
    for node in world.nodes.values():
        node.answer("probe", result=CommandResult(0, "", ""))
        node.answer("bump", result=CommandResult(0, "bumped\n", ""))
    check = _steps(run, Action.CHECK)[0]
    command = _steps(run, Action.COMMAND)[0]
    full = run.ctx.plan
    run.execute(upto=check.n - 1)
    run.mark(check.n, StepStatus.RUNNING)
    run.ctx.plan = full
    run.execute(upto=command.n - 1)
    assert run.records()[check.n].status is StepStatus.SUCCEEDED  # observed: None, so it ran again
    run.mark(command.n, StepStatus.RUNNING)
    run.ctx.plan = full
    with pytest.raises(StepFailedError, match="not idempotent: check on the node whether it took effect"):
        run.execute(upto=command.n)
    assert run.records()[command.n].status is StepStatus.FAILED
    assert not world.nodes[command.node].ran_any("bump")
    run.ctx.plan = full
    run.execute(upto=command.n)  # the person looked and resumed: it runs once more
    assert run.records()[command.n].status is StepStatus.SUCCEEDED
    assert world.nodes[command.node].ran_any("bump")


def test_a_step_for_dnf_nodes_only_does_nothing_on_an_apt_node(world: NodeWorld, tmp_path: Path) -> None:
    books = _copy(tmp_path, worker=PROBE.replace("interval: 7}\n", "interval: 7}\n      when: {manager: dnf}\n"))
    run = _run(world, books)
    run.execute()
    check = _steps(run, Action.CHECK)[0]
    assert run.records()[check.n].outputs["skipped"] == "w-1 uses apt: this step runs on dnf nodes only"
    assert not world.nodes["w-1"].ran_any("probe")


def test_a_bad_copy_is_refused_before_anything_is_recorded(world: NodeWorld, tmp_path: Path) -> None:
    books = _copy(tmp_path, worker=PROBE.replace('[probe, "{node}", "{version}"]', '"probe {node}"'))
    with pytest.raises(PlaybookError, match=r"worker.yaml:\d+: step 3 \(probe-before-drain\): field argv: expected a "
                       "list of strings"):
        make_plan(world.app, PlanRequest(cluster=CLUSTER, target="v1.31", state=None, catalog=None,
                                         playbooks=str(books)))
    with world.ledger.unit_of_work() as uow:
        assert uow.repo.list_plans(CLUSTER) == []


def test_the_dry_run_says_what_each_added_step_would_run(world: NodeWorld, tmp_path: Path) -> None:
    hook = """    - name: notify
      action: command
      with: {argv: [notify-pager, "{node}"], timeout: 20, idempotent: false}
"""
    run = _run(world, _copy(tmp_path, worker=PROBE + hook))
    check, command = _steps(run, Action.CHECK)[0], _steps(run, Action.COMMAND)[0]
    assert HANDLERS[Action.CHECK].describe(run.ctx, check) == [
        "w-1: probe w-1 v1.31.14 until it exits 0: 3 attempt(s), 7s apart, 30s each"]
    assert HANDLERS[Action.COMMAND].describe(run.ctx, command) == [
        "w-1: notify-pager w-1 (at most 20s; not idempotent: resume asks a person)"]
    assert not world.nodes["w-1"].ran_any("probe") and not world.nodes["w-1"].ran_any("notify-pager")
