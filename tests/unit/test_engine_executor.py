"""The run executor on a fake cluster (tests/unit/node_world.py): what it records and when, how it
stops (a failed step, a batch, a stop request, a lost lease), how it retries an unreachable node, and
how a step a dead process left ``running`` is observed before it is acted again."""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.node_world import CLUSTER, NodeWorld, build
from upgrader.domain.plans import Action, Plan, Step, plan_from_dict
from upgrader.domain.runs import StepStatus
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions, Hooks, RunContext, StepEvent, StopRequestedError
from upgrader.engine.executor import StepFailedError, execute
from upgrader.errors import LockLostError, PreflightError
from upgrader.fakes import FakeClock, FakeTransport
from upgrader.ports import CommandResult

TARGET = "v1.31.14"  # the built-in catalog's newest v1.31


@dataclasses.dataclass
class Run:
    """A run recorded in the world's ledger under its lease, and the context the executor works in."""

    world: NodeWorld
    ctx: RunContext
    events: list[StepEvent]
    etcd_ok: list[bool]

    def step(self, action: Action, node: str | None = None) -> Step:
        return next(s for s in self.ctx.plan.steps if s.action is action and (node is None or s.node == node))

    def records(self) -> dict[int, Any]:
        return self.world.steps(self.ctx.run_id)

    def execute(self, *, upto: int | None = None) -> None:
        """Every step not done yet (up to step ``upto``), from the ledger's records, as resume does."""
        if upto is not None:
            self.ctx.plan = dataclasses.replace(self.ctx.plan, steps=tuple(s for s in self.ctx.plan.steps
                                                                           if s.n <= upto))
        execute(self.ctx, self.records())

    def on_running(self, n: int, arm: Callable[[], None]) -> None:
        """Call ``arm`` when step ``n`` has been recorded running, before it acts."""
        report = self.ctx.report

        def armed(event: StepEvent) -> None:
            report(event)
            if event.n == n and event.status == "running":
                arm()
        self.ctx.report = armed

    def mark(self, n: int, status: StepStatus) -> None:
        """Record step ``n`` as a previous process left it (running, or done)."""
        with self.world.ledger.unit_of_work() as uow:
            uow.repo.start_step(self.ctx.run_id, n, token=self.ctx.token)
            if status is not StepStatus.RUNNING:
                uow.repo.finish_step(self.ctx.run_id, n, status, token=self.ctx.token, outputs={})
            uow.commit()


def start(world: NodeWorld, plan_id: int, **options: Any) -> Run:
    with world.ledger.unit_of_work() as uow:
        token = int(uow.repo.acquire_lock(cluster=CLUSTER, holder="apply@ops-1:1", ttl_seconds=60,
                                          now=world.clock.now()))
        record = uow.repo.create_run(plan_id=plan_id, started_by="alice", host="ops-1", command_line="upgrader apply",
                                     token=token, options={})
        plan: Plan = plan_from_dict(dict(uow.repo.get_plan(plan_id).document))
        uow.commit()
    events: list[StepEvent] = []
    etcd_ok = [True]
    hooks = Hooks(preflight=lambda: {"passed": True}, snapshot=lambda step: {"snapshot_id": 41},
                  etcd_health=lambda: (etcd_ok[0], "1 member healthy" if etcd_ok[0] else "member cp-1 unhealthy"))
    ctx = RunContext(run_id=record.id, token=token, cluster=CLUSTER, plan=plan,
                     options=ApplyOptions(**({"gate_interval": 1.0} | options)),
                     unit_of_work=world.ledger.unit_of_work, api=world.api, transports=lambda n: world.nodes[n],
                     clock=world.clock, hooks=hooks, report=events.append)
    return Run(world, ctx, events, etcd_ok)


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    return NodeWorld(tmp_path, control_planes=1, workers=1)


@pytest.fixture
def run(world: NodeWorld) -> Run:
    return start(world, world.plan("v1.31"))


def _acting(argv: list[str]) -> Action | None:
    """The step a command that changes the node belongs in."""
    if argv[:2] == ["apt-get", "install"]:
        return Action.UPGRADE_KUBEADM if any(a.startswith("kubeadm=") for a in argv) else Action.UPGRADE_KUBELET
    if argv[:3] == ["kubeadm", "upgrade", "apply"]:
        return Action.KUBEADM_UPGRADE_APPLY
    if argv[:3] == ["kubeadm", "upgrade", "node"]:
        return Action.KUBEADM_UPGRADE_NODE
    return Action.UPGRADE_KUBELET if argv[:2] == ["systemctl", "restart"] else None


def test_each_step_is_recorded_running_before_it_acts_and_succeeded_after_with_outputs_and_timing(
        world: NodeWorld, run: Run) -> None:
    seen: list[tuple[str, list[str], list[tuple[int, str]]]] = []  # node, argv, the steps running at that moment

    def note(name: str) -> Callable[[list[str]], None]:
        return lambda argv: seen.append(
            (name, argv, [(n, s.action) for n, s in run.records().items() if s.status is StepStatus.RUNNING]))
    for name, node in world.nodes.items():
        node.hook(before=note(name))
    world.nodes["cp-1"].hook("apt-get", "install", before=lambda argv: world.clock.advance(0.05))  # a slow mirror
    checked: list[tuple[int, str]] = []

    def ledger_agrees(event: StepEvent) -> None:  # each event is reported once the ledger says so
        record = run.records()[event.n]
        assert record.status == event.status and record.attempts == 1, (event, record)
        assert record.started_at is not None and (record.finished_at is None) == (event.status == "running")
        checked.append((event.n, event.status))
    run.ctx.report = ledger_agrees

    run.execute()

    steps = run.ctx.plan.steps
    assert checked == [(s.n, status) for s in steps for status in ("running", "succeeded")]
    assert seen and any(_acting(argv) for _, argv, _ in seen)
    for name, argv, running in seen:  # every node command ran inside exactly one running step, on its node
        assert len(running) == 1, (name, argv, running)
        step = steps[running[0][0] - 1]
        assert step.node == name, (name, argv, step)
        assert _acting(argv) in (None, step.action), (name, argv, step)
    records = run.records()
    assert all(r.status is StepStatus.SUCCEEDED and r.error is None for r in records.values())
    for r in records.values():
        timing = r.outputs["timing"]
        assert set(timing) == {"wall_ms", "node_ms", "wait_ms", "api_ms", "ledger_ms"}
        assert timing["wall_ms"] >= timing["node_ms"] >= 0 and timing["wall_ms"] >= timing["wait_ms"] >= 0
        assert r.started_at <= r.finished_at
    kubeadm = records[run.step(Action.UPGRADE_KUBEADM, "cp-1").n]
    assert kubeadm.outputs["timing"]["node_ms"] >= 50  # the slow install is the node's time, not the run's
    assert kubeadm.outputs["packages"] == {"kubeadm": build("apt", Version.parse(TARGET))}
    assert kubeadm.outputs["repo"] == "/etc/apt/sources.list.d/kubernetes.list" and kubeadm.outputs["changed"]
    assert "SUCCESS!" in records[run.step(Action.KUBEADM_UPGRADE_APPLY).n].outputs["output"]
    assert records[run.step(Action.DRAIN, "w-1").n].outputs["evicted"] == ["demo/web-w-1"]
    gate = records[run.step(Action.HEALTH_GATE, "cp-1").n].outputs
    assert gate["passes"] == 3 and gate["readings"] == 3
    assert records[run.step(Action.SNAPSHOT).n].outputs["snapshot_id"] == 41
    assert world.kubelets() == {"cp-1": TARGET, "w-1": TARGET}


def test_a_failed_node_command_keeps_its_last_output_lines_in_the_failed_step(world: NodeWorld, run: Run) -> None:
    lines = "".join(f"[upgrade/staticpods] waiting for kube-apiserver ({i}/30)\n" for i in range(1, 31))
    world.nodes["cp-1"].answer("kubeadm", "upgrade", "apply", result=CommandResult(
        1, lines, "error execution phase control-plane: static Pod hash for component kube-apiserver on Node cp-1 "
        "did not change after 5m0s\n"))
    apply_step = run.step(Action.KUBEADM_UPGRADE_APPLY)

    with pytest.raises(StepFailedError) as failed:
        run.execute()

    assert failed.value.step == apply_step and failed.value.exit_code == 6
    record = run.records()[apply_step.n]
    assert record.status is StepStatus.FAILED and record.attempts == 1
    assert record.error == (f"kubeadm upgrade apply {TARGET} ... failed on cp-1 (exit 1): error execution phase "
                            "control-plane: static Pod hash for component kube-apiserver on Node cp-1 did not change "
                            "after 5m0s")
    kept = record.outputs["output"].splitlines()
    assert len(kept) == 20 and kept[0].endswith("(12/30)") and kept[-2].endswith("(30/30)")
    assert kept[-1].startswith("error execution phase control-plane")
    assert failed.value.tail == record.outputs["output"] and "timing" in record.outputs
    assert [r.status for n, r in run.records().items() if n > apply_step.n] == [StepStatus.PENDING] * (
        len(run.ctx.plan.steps) - apply_step.n)
    assert [e.status for e in run.events if e.n == apply_step.n] == ["running", "failed"]


# -- a step a dead process left running ---------------------------------------------------------------

def _kubeadm_installed(world: NodeWorld) -> None:
    node = world.nodes["cp-1"]
    node.files["/etc/apt/sources.list.d/kubernetes.list"] = (
        node.files["/etc/apt/sources.list.d/kubernetes.list"][0].replace(b"v1.30", b"v1.31"), 0o644)
    node.installed["kubeadm"] = build("apt", Version.parse(TARGET))


def _control_plane_moved(world: NodeWorld) -> None:
    _kubeadm_installed(world)
    world.move_control_plane(world.nodes["cp-1"], Version.parse(TARGET))
    world.set_cluster_version(Version.parse(TARGET))


def _kubelet_restarted(world: NodeWorld) -> None:
    node = world.nodes["w-1"]
    node.installed |= {"kubelet": build("apt", Version.parse(TARGET)), "kubectl": build("apt", Version.parse(TARGET))}
    world.set_kubelet("w-1", Version.parse(TARGET))


def _drained(world: NodeWorld, run_id: int) -> None:
    from upgrader.engine.drain import drain

    drain(world.api, world.clock, "w-1", run_id=run_id, timeout=10)


OBSERVED: dict[str, tuple[Action, str, Callable[[NodeWorld, int], None], tuple[str, ...]]] = {
    # the step, its node, what the dead process got done, the command that would have done it again
    "kubeadm package": (Action.UPGRADE_KUBEADM, "cp-1", lambda w, r: _kubeadm_installed(w), ("apt-get", "install")),
    "kubeadm upgrade apply": (Action.KUBEADM_UPGRADE_APPLY, "cp-1", lambda w, r: _control_plane_moved(w),
                              ("kubeadm", "upgrade")),
    "kubelet": (Action.UPGRADE_KUBELET, "w-1", lambda w, r: _kubelet_restarted(w), ("systemctl", "restart")),
    "drain": (Action.DRAIN, "w-1", _drained, ()),
}


@pytest.mark.parametrize("case", OBSERVED)
def test_a_running_step_whose_effect_is_there_is_recorded_succeeded_as_observed_without_acting(
        world: NodeWorld, run: Run, case: str) -> None:
    action, node, done, command = OBSERVED[case]
    step = run.step(action, node)
    for earlier in run.ctx.plan.steps[:step.n - 1]:
        run.mark(earlier.n, StepStatus.SUCCEEDED)
    run.mark(step.n, StepStatus.RUNNING)
    done(world, run.ctx.run_id)
    evictions = len(world.api.pods)

    run.execute(upto=step.n)

    record = run.records()[step.n]
    assert record.status is StepStatus.SUCCEEDED and record.attempts == 1
    assert record.outputs["observed"] is True
    if command:
        assert not world.nodes[node].ran_any(*command)
    else:
        assert len(world.api.pods) == evictions and record.outputs == {"observed": True, "drained": True}
    assert [e.status for e in run.events] == ["observed"]


@pytest.mark.parametrize("case", ["kubeadm package", "kubeadm upgrade apply", "kubelet"])
def test_a_running_step_whose_effect_is_not_there_is_acted_again(world: NodeWorld, run: Run, case: str) -> None:
    action, node, _done, command = OBSERVED[case]
    step = run.step(action, node)
    for earlier in run.ctx.plan.steps[:step.n - 1]:
        run.mark(earlier.n, StepStatus.SUCCEEDED)
    if action is not Action.UPGRADE_KUBEADM:
        _kubeadm_installed(world)  # what the earlier steps did
    if action is Action.UPGRADE_KUBELET:
        world.api.patch_node("w-1", {"spec": {"unschedulable": True}})
    run.mark(step.n, StepStatus.RUNNING)

    run.execute(upto=step.n)

    record = run.records()[step.n]
    assert record.status is StepStatus.SUCCEEDED and record.attempts == 2 and "observed" not in record.outputs
    assert world.nodes[node].ran_any(*command)


# -- a batch, a stop, a lost lease ----------------------------------------------------------------------

def _wait_until(what: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_when_a_node_of_a_batch_fails_the_others_finish_their_step_and_start_no_other(tmp_path: Path) -> None:
    world = NodeWorld(tmp_path, control_planes=1, workers=2)
    run = start(world, world.plan("v1.31", max_unavailable=2))
    failing = run.step(Action.KUBEADM_UPGRADE_NODE, "w-1")
    world.nodes["w-1"].answer("kubeadm", "upgrade", "node", result=CommandResult(1, "", "[upgrade] FATAL: boom\n"))

    w2_started = threading.Event()

    def hold_on(argv: list[str]) -> None:  # w-2 is in the middle of its first step when w-1 fails
        w2_started.set()
        _wait_until(lambda: run.records()[failing.n].status is StepStatus.FAILED)
        time.sleep(0.5)  # and its thread has told the batch (right after that write)
    world.nodes["w-2"].hook("apt-get", "install", before=hold_on, times=1)
    # w-1 fails only once w-2 is inside its first step (else w-2's thread may not have started at all)
    world.nodes["w-1"].hook("kubeadm", "upgrade", "node", before=lambda argv: w2_started.wait(10))

    with pytest.raises(StepFailedError) as failed:
        run.execute()

    assert failed.value.step == failing
    records = run.records()
    w2 = [s for s in run.ctx.plan.steps if s.node == "w-2"]
    assert records[w2[0].n].status is StepStatus.SUCCEEDED  # the step it was in, finished
    assert all(records[s.n].status is StepStatus.PENDING for s in w2[1:])  # and nothing more
    assert not world.nodes["w-2"].ran_any("kubeadm", "upgrade")
    after = [s for s in run.ctx.plan.steps if (s.batch is not None and s.node is None) or s.action is Action.POSTFLIGHT]
    assert after and all(records[s.n].status is StepStatus.PENDING for s in after)


def test_a_stop_request_ends_the_run_at_the_next_step_boundary(world: NodeWorld, run: Run) -> None:
    kubeadm = run.step(Action.UPGRADE_KUBEADM, "cp-1")
    world.nodes["cp-1"].hook("apt-get", "install", before=lambda argv: run.ctx.stop.set())

    with pytest.raises(StopRequestedError):
        run.execute()

    records = run.records()
    assert records[kubeadm.n].status is StepStatus.SUCCEEDED  # a step is never left half done by a stop
    assert all(records[s.n].status is StepStatus.PENDING for s in run.ctx.plan.steps[kubeadm.n:])
    assert not world.nodes["cp-1"].ran_any("kubeadm", "upgrade")


def test_a_stop_request_during_a_health_gate_fails_the_gate_as_interrupted(world: NodeWorld, run: Run) -> None:
    gate = run.step(Action.HEALTH_GATE, "cp-1")
    run.etcd_ok[0] = False  # the gate keeps reading until the stop
    world.api.after(5, run.ctx.stop.set)

    with pytest.raises(StopRequestedError):
        run.execute()

    record = run.records()[gate.n]
    assert record.status is StepStatus.FAILED and record.error == "interrupted by the operator"
    assert all(run.records()[s.n].status is StepStatus.PENDING for s in run.ctx.plan.steps[gate.n:])


def test_a_lost_lease_stops_the_run_at_its_next_write_and_nothing_more_is_written(world: NodeWorld, run: Run) -> None:
    kubeadm = run.step(Action.UPGRADE_KUBEADM, "cp-1")
    taken: list[Any] = []

    def take_over(argv: list[str]) -> None:  # another upgrader presumed this run dead and took its lease
        with world.ledger.unit_of_work() as uow:
            uow.repo.acquire_lock(cluster=CLUSTER, holder="apply@ops-2:77", ttl_seconds=60, now=world.clock.now(),
                                  run_id=run.ctx.run_id, take_over=run.ctx.token)
            uow.commit()
        taken.append(world.run(run.ctx.run_id))
    world.nodes["cp-1"].hook("apt-get", "install", before=take_over, times=1)

    with pytest.raises(LockLostError) as lost:
        run.execute()

    assert "apply@ops-2:77" in lost.value.message and lost.value.exit_code == 7
    assert world.run(run.ctx.run_id) == taken[0]  # not one write since the takeover
    assert run.records()[kubeadm.n].status is StepStatus.RUNNING  # the new holder observes it on resume
    assert not world.nodes["cp-1"].ran_any("kubeadm", "upgrade")
    assert [e.status for e in run.events if e.n == kubeadm.n] == ["running"]


# -- unreachable nodes --------------------------------------------------------------------------------

def _lose(world: NodeWorld, how: str, calls: int, slept: list[int]) -> Callable[[], None]:
    """What makes cp-1 unreachable for its next ``calls`` (noting how much the clock had slept then)."""
    def lose() -> None:
        slept.append(len(world.clock.slept))
        if how == "transport":
            world.nodes["cp-1"].drop = calls  # the transport raises NodeUnreachableError
        else:
            world.nodes["cp-1"].ssh_down = calls  # ssh exits 255 saying why
    return lose


@pytest.mark.parametrize("how", ["transport", "ssh"])
@pytest.mark.parametrize("action", [Action.KUBEADM_UPGRADE_APPLY, Action.UPGRADE_KUBEADM])
def test_an_unreachable_node_is_tried_node_attempts_times_with_doubling_waits_then_the_step_fails(
        world: NodeWorld, run: Run, how: str, action: Action) -> None:
    step = run.step(action, "cp-1")
    slept: list[int] = []
    run.on_running(step.n, _lose(world, how, 1000, slept))

    with pytest.raises(StepFailedError) as failed:
        run.execute()

    assert failed.value.step == step
    assert world.clock.slept[slept[0]:] == [2.0, 4.0, 8.0]  # node_attempts=4, node_backoff=2
    record = run.records()[step.n]
    assert record.status is StepStatus.FAILED and record.error.startswith("node cp-1 is unreachable (4 tries): ")
    assert ("ssh: connect to host cp-1" if how == "ssh" else "no answer") in record.error


@pytest.mark.parametrize("how", ["transport", "ssh"])
@pytest.mark.parametrize("action", [Action.KUBEADM_UPGRADE_APPLY, Action.UPGRADE_KUBEADM])
def test_a_node_that_comes_back_within_its_attempts_lets_the_step_succeed(
        world: NodeWorld, run: Run, how: str, action: Action) -> None:
    step = run.step(action, "cp-1")
    slept: list[int] = []
    run.on_running(step.n, _lose(world, how, 2, slept))

    run.execute(upto=step.n)

    assert run.records()[step.n].status is StepStatus.SUCCEEDED
    assert world.clock.slept[slept[0]:] == [2.0, 4.0]


def test_a_command_that_itself_exits_255_is_a_failure_not_an_unreachable_node(world: NodeWorld, run: Run) -> None:
    step = run.step(Action.KUBEADM_UPGRADE_APPLY)
    world.nodes["cp-1"].answer("kubeadm", "upgrade", "apply",
                               result=CommandResult(255, "", "error: hook exited with status 255\n"))
    slept: list[int] = []
    run.on_running(step.n, lambda: slept.append(len(world.clock.slept)))

    with pytest.raises(StepFailedError):
        run.execute()

    assert world.clock.slept[slept[0]:] == []
    assert sum(argv[:3] == ["kubeadm", "upgrade", "apply"] for argv in world.nodes["cp-1"].ran) == 1
    assert run.records()[step.n].error.endswith("(exit 255): error: hook exited with status 255")


@settings(max_examples=25, deadline=None)
@given(attempts=st.integers(1, 6), backoff=st.sampled_from([0.5, 1.0, 2.0, 3.0]), down=st.integers(0, 8))
def test_any_node_is_tried_node_attempts_times_waiting_twice_as_long_each_time(
        attempts: int, backoff: float, down: int) -> None:
    node, clock = FakeTransport(handlers={"true": lambda argv: CommandResult(0, "", "")}), FakeClock()
    calls = [0]

    def flaky(argv: list[str], timeout: float) -> CommandResult:
        calls[0] += 1
        return FakeTransport.run(node, argv, timeout) if calls[0] > down else CommandResult(
            255, "", "ssh: connect to host n port 22: No route to host\n")
    node.run = flaky  # type: ignore[method-assign]
    ctx = RunContext(run_id=1, token=1, cluster=CLUSTER, plan=None, options=ApplyOptions(  # type: ignore[arg-type]
        node_attempts=attempts, node_backoff=backoff), unit_of_work=None, api=None,  # type: ignore[arg-type]
        transports=lambda n: node, clock=clock, hooks=None)  # type: ignore[arg-type]
    if down < attempts:
        assert ctx.run("n", ["true"]).ok
    else:
        with pytest.raises(Exception, match=rf"node n is unreachable \({attempts} tries\): ssh: connect"):
            ctx.run("n", ["true"])
    tries = min(down + 1, attempts)
    assert calls[0] == tries and clock.slept == [backoff * 2 ** i for i in range(tries - 1)]


# -- any step failing -----------------------------------------------------------------------------------

def _break(run: Run, step: Step) -> None:
    """Make ``step`` fail the way such a step fails on a real cluster (armed once it is recorded running)."""
    world = run.world
    node = world.nodes.get(step.node or "")
    if step.action is Action.PREFLIGHT:
        def refuse() -> dict[str, Any]:
            raise PreflightError("preflight refused: etcd member cp-1 unhealthy")
        run.ctx.hooks = dataclasses.replace(run.ctx.hooks, preflight=refuse)
    elif step.action is Action.SNAPSHOT:
        world.nodes["cp-1"].answer("kubeadm", "config", "images", "pull", result=CommandResult(
            1, "", "failed to pull image registry.k8s.io/kube-apiserver: connection reset by peer\n"))
    elif step.action in (Action.UPGRADE_KUBEADM, Action.UPGRADE_KUBELET):
        assert node is not None
        node.answer("apt-get", "install", result=CommandResult(100, "", "E: Could not get lock /var/lib/dpkg/lock\n"))
    elif step.action in (Action.KUBEADM_UPGRADE_APPLY, Action.KUBEADM_UPGRADE_NODE):
        assert node is not None
        node.answer("kubeadm", "upgrade", result=CommandResult(1, "", "error execution phase preflight\n"))
    elif step.action in (Action.DRAIN, Action.UNCORDON):
        world.api.down.add(str(step.node))
    elif step.action is Action.HEALTH_GATE and step.node is not None:
        run.etcd_ok[0] = False
    elif step.action is Action.HEALTH_GATE:
        world.set_ready(next(s.node for s in run.ctx.plan.steps if s.batch == step.batch and s.node), False)
    else:
        assert step.action is Action.POSTFLIGHT, step
        world.api.readyz_answer = (500, "[-]etcd failed: reason withheld\n")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(control_planes=st.integers(1, 2), workers=st.integers(0, 2), max_unavailable=st.integers(1, 2),
       pick=st.integers(0, 10_000))
def test_any_failing_step_leaves_every_earlier_step_succeeded_and_no_later_one_started(
        control_planes: int, workers: int, max_unavailable: int, pick: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = NodeWorld(Path(tmp), control_planes=control_planes, workers=workers)
        run = start(world, world.plan("v1.31", max_unavailable=max_unavailable), gate_timeout=6.0, drain_timeout=6.0)
        steps = run.ctx.plan.steps
        failing = steps[pick % len(steps)]
        run.on_running(failing.n, lambda: _break(run, failing))

        with pytest.raises(StepFailedError) as failed:
            run.execute()

        assert failed.value.step == failing
        records = run.records()
        assert records[failing.n].status is StepStatus.FAILED and records[failing.n].error
        in_batch = {s.node for s in steps if failing.batch is not None and s.batch == failing.batch and s.node}
        for step in steps:
            status = records[step.n].status
            if step.n == failing.n:
                continue
            if step.node in in_batch and step.batch == failing.batch and step.node != failing.node:
                assert status in (StepStatus.SUCCEEDED, StepStatus.PENDING), (step, status)  # what it finished
            elif step.n < failing.n:
                assert status is StepStatus.SUCCEEDED, (step, status)
            else:
                assert status is StepStatus.PENDING, (step, status)
        for node in in_batch:  # each node of the batch stopped after a step, never between or in one
            statuses = [records[s.n].status for s in steps if s.node == node and s.batch == failing.batch]
            done = statuses.count(StepStatus.SUCCEEDED)
            assert statuses[:done] == [StepStatus.SUCCEEDED] * done
