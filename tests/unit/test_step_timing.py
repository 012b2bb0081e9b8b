"""A step's outputs.timing accounts for every millisecond: node commands however they are reached,
a drain's and a gate's waiting, API calls and the step's `running` write, so wall - node - wait is
upgrader's own overhead and nothing of the cluster's work hides in it.

On the fake clock, time moves only where the test says a node command, an API call, a ledger commit
or a sleep takes it; so every figure is exact, and anything left over would be misattributed time.
Also here: the package-manager probe a step makes has the step's command timeout, not the inventory's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Self

from upgrader.domain.plans import Action, Plan, Reversibility, Step, Strategy
from upgrader.domain.preflight import CORDON_ANNOTATION
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions, Hooks, RunContext
from upgrader.engine.executor import run_step
from upgrader.fakes import FakeClock, FakeClusterApi, FakeTransport, InMemoryLedger
from upgrader.ports import CommandResult

V31 = Version(1, 31, 4)
REPO = "deb [signed-by=/etc/apt/keyrings/kubernetes.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n"


def _step(n: int, action: Action, node: str | None, *, batch: int | None = None) -> Step:
    return Step(n, action, node, V31, batch, Reversibility.NONE, hop=0)


class _SlowCommits:
    """The fake ledger's transaction, whose commit takes ``seconds`` of the clock (a real one fsyncs)."""

    def __init__(self, ledger: InMemoryLedger, clock: FakeClock, seconds: float) -> None:
        self._uow, self._clock, self._seconds = ledger.unit_of_work(), clock, seconds

    @property
    def repo(self) -> Any:
        return self._uow.repo

    def __enter__(self) -> Self:
        self._uow.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._uow.__exit__(None, None, None)

    def commit(self) -> None:
        self._clock.advance(self._seconds)
        self._uow.commit()

    def rollback(self) -> None:
        self._uow.rollback()


class _SlowApi(FakeClusterApi):
    """The fake cluster, whose reads and writes of nodes take ``seconds`` each."""

    def __init__(self, clock: FakeClock, seconds: float, **kwargs: Any) -> None:
        super().__init__(clock=clock, **kwargs)
        self.seconds = seconds

    def _reach(self) -> None:
        assert self.clock is not None
        self.clock.advance(self.seconds)  # type: ignore[attr-defined]
        super()._reach()


def _run(steps: list[Step], n: int, *, clock: FakeClock, api: FakeClusterApi,
         node: FakeTransport | None = None, commit_seconds: float = 0.0, **options: Any) -> dict[str, float]:
    """Step ``n`` of a plan of ``steps`` run once through the executor; its recorded timing."""
    ledger = InMemoryLedger(clock=clock.now)
    with ledger.unit_of_work() as uow:
        uow.repo.add_cluster(name="prod", kubeconfig="/k", context=None, transport=None, actor="t")
        plan_id = uow.repo.save_plan(cluster="prod", observation=None, created_by="t", target=str(V31), strategy={},
                                     skipped_versions=[], source_fingerprint=None, document={},
                                     steps=[s.to_dict() for s in steps])
        token = int(uow.repo.acquire_lock(cluster="prod", holder="t", ttl_seconds=60, now=clock.now()))
        run = uow.repo.create_run(plan_id=plan_id, started_by="t", host="h", command_line="c", token=token,
                                  options={})
        uow.commit()
    plan = Plan(cluster="prod", source_version=Version(1, 30, 6), target=V31, source_fingerprint=None,
                strategy=Strategy(), skipped_versions=(), hops=(), steps=tuple(steps))

    def unused(*args: Any) -> Any:
        raise AssertionError("not used by this step")

    ctx = RunContext(run_id=run.id, token=token, cluster="prod", plan=plan, options=ApplyOptions(**options),
                     unit_of_work=lambda: _SlowCommits(ledger, clock, commit_seconds), api=api,
                     transports=lambda name: node if node is not None else unused(name), clock=clock,
                     hooks=Hooks(preflight=unused, snapshot=unused, etcd_health=unused), stop=threading.Event())
    record = next(s for s in run.steps if s.n == n)
    run_step(ctx, steps[n - 1], record)
    with ledger.unit_of_work() as uow:
        done = next(s for s in uow.repo.get_run(run.id).steps if s.n == n)
    assert done.status.value == "succeeded", done.error
    assert done.outputs is not None
    return dict(done.outputs["timing"])


def _apt_node(clock: FakeClock, seconds: float) -> FakeTransport:
    """A Debian node with kubeadm 1.30.6 whose every command takes ``seconds`` of the clock."""
    installed = {"kubeadm": "1.30.6-1.1"}

    def taking(answer: Callable[[list[str]], CommandResult]) -> Callable[[list[str]], CommandResult]:
        def handler(argv: list[str]) -> CommandResult:
            clock.advance(seconds)
            return answer(argv)
        return handler

    def apt_get(argv: list[str]) -> CommandResult:
        if argv[1] == "install":
            name, build = argv[-1].split("=")
            installed[name] = build
        return CommandResult(0, "apt 2.6.1\n" if argv[1] == "--version" else "", "")

    files = {"/etc/apt/sources.list.d/kubernetes.list": REPO.encode()}
    node = FakeTransport(files=files, handlers={k: taking(h) for k, h in {
        "apt-get": apt_get,
        "grep": lambda argv: CommandResult(0, "/etc/apt/sources.list.d/kubernetes.list\n", ""),
        "head": lambda argv: CommandResult(0, node.files[argv[-1]][0].decode(), ""),
        "apt-cache": lambda argv: CommandResult(0, f" {argv[-1]} | 1.31.4-1.1 | https://pkgs.k8s.io v1.31\n", ""),
        "apt-mark": lambda argv: CommandResult(0, "", ""),
        "dpkg-query": lambda argv: CommandResult(0, installed[argv[-1]], ""),
    }.items()})
    return node


def test_every_node_command_counts_as_node_time_the_package_manager_probe_too() -> None:
    clock = FakeClock()
    node = _apt_node(clock, 0.1)
    timing = _run([_step(1, Action.UPGRADE_KUBEADM, "cp-1")], 1, clock=clock, api=FakeClusterApi(), node=node)
    probes = [argv for argv in node.ran if argv[:2] == ["apt-get", "--version"] or argv[0] in ("grep", "head")]
    assert probes, "the step asks which package manager and repository the node has"
    assert timing["node_ms"] == 100.0 * len(node.ran)
    assert timing["wall_ms"] == timing["node_ms"] and timing["wait_ms"] == 0.0


def test_a_drain_waiting_for_evicted_pods_to_go_counts_as_waiting() -> None:
    clock = FakeClock()
    pod = {"metadata": {"name": "web-1", "namespace": "default", "uid": "u1",
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "web"}]},
           "spec": {"nodeName": "w1"}, "status": {"phase": "Running"}}
    api = FakeClusterApi(nodes=[{"metadata": {"name": "w1"}, "spec": {}}], pods=[pod], clock=clock,
                         terminating_seconds=2.5)
    timing = _run([_step(1, Action.DRAIN, "w1", batch=1)], 1, clock=clock, api=api)
    assert clock.slept == [1.0, 1.0, 1.0]  # kubectl's one-second look until the pod is gone
    assert timing["wait_ms"] == 3000.0 and timing["wall_ms"] == 3000.0


def test_a_gate_counts_once_as_waiting_its_readings_with_its_sleeps() -> None:
    clock = FakeClock()
    ready = {"type": "Ready", "status": "True"}
    api = _SlowApi(clock, 0.05, nodes=[{"metadata": {"name": "w1"},
                                        "status": {"conditions": [ready], "nodeInfo": {"kubeletVersion": str(V31)}}}])
    steps = [_step(1, Action.UNCORDON, "w1", batch=1), _step(2, Action.HEALTH_GATE, None, batch=1)]
    timing = _run(steps, 2, clock=clock, api=api, gate_passes=2, gate_interval=1.0)
    # two readings (readyz, nodes at the version, all nodes Ready: 3 calls of 50 ms) one second apart
    assert timing["wall_ms"] == 1300.0
    assert timing["wait_ms"] == 1300.0 and timing["api_ms"] == 0.0


def test_api_calls_and_the_running_write_are_the_overhead_named_in_parts() -> None:
    clock = FakeClock()
    api = _SlowApi(clock, 0.02, nodes=[{"metadata": {"name": "w1", "annotations": {
        CORDON_ANNOTATION: "1"}}, "spec": {"unschedulable": True}}])
    timing = _run([_step(1, Action.UNCORDON, "w1", batch=1)], 1, clock=clock, api=api, commit_seconds=0.03)
    assert timing["api_ms"] == 40.0  # read the node, patch it
    assert timing["ledger_ms"] == 30.0  # the `running` write; the outcome's write comes after the figures
    assert timing["wall_ms"] == 70.0 and timing["node_ms"] == 0.0 and timing["wait_ms"] == 0.0


def test_the_package_probe_waits_as_long_as_the_steps_other_commands() -> None:
    clock = FakeClock()
    node = _apt_node(clock, 0.0)
    timeouts: dict[str, set[float]] = {}
    answer = node.run

    def run(argv: list[str], timeout: float) -> CommandResult:
        timeouts.setdefault(argv[0], set()).add(timeout)
        return answer(argv, timeout)

    node.run = run  # type: ignore[method-assign]
    _run([_step(1, Action.UPGRADE_KUBEADM, "cp-1")], 1, clock=clock, api=FakeClusterApi(), node=node,
         command_timeout=120.0)
    assert timeouts["grep"] == {120.0} and timeouts["head"] == {120.0}
    assert set().union(*timeouts.values()) == {120.0}, timeouts
