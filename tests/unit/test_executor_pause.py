"""A run pauses where its caller's `pause` says (the scheduler's closing window): before a step that
has not started, never inside one; in a worker batch the paused node starts nothing while the other
nodes finish the steps they are in, so no node is left drained by the pause."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any

import pytest

from upgrader.domain.plans import Action, Plan, Reversibility, Step, Strategy
from upgrader.domain.runs import StepStatus
from upgrader.domain.versions import Version
from upgrader.engine import executor
from upgrader.engine.context import ApplyOptions, Hooks, PausedError, RunContext
from upgrader.engine.steps import Handler
from upgrader.fakes import FakeClock

V = Version(1, 31, 4)


class Record:
    def __init__(self, status: StepStatus = StepStatus.PENDING) -> None:
        self.status = status


class Repo:
    """Only what the executor writes: each step's start and end, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def start_step(self, run_id: int, n: int, *, token: int) -> None:
        with self.lock:
            self.log.append(("start", n))

    def finish_step(self, run_id: int, n: int, status: StepStatus, **kwargs: Any) -> None:
        with self.lock:
            self.log.append((status.value, n))


def _ctx(steps: tuple[Step, ...], repo: Repo, pause: Any) -> RunContext:
    plan = Plan(cluster="prod", source_version=Version(1, 30, 6), target=V, source_fingerprint="x",
                strategy=Strategy(max_unavailable=2), skipped_versions=(), hops=(), steps=steps)

    @contextmanager
    def unit_of_work() -> Any:
        class Uow:
            def commit(self) -> None:
                pass

        uow = Uow()
        uow.repo = repo  # type: ignore[attr-defined]
        yield uow

    def unused(*args: Any) -> Any:
        raise AssertionError("not used here")

    return RunContext(run_id=1, token=1, cluster="prod", plan=plan, options=ApplyOptions(),
                      unit_of_work=unit_of_work, api=unused, transports=unused,  # type: ignore[arg-type]
                      clock=FakeClock(), hooks=Hooks(preflight=unused, snapshot=unused, etcd_health=unused),
                      pause=pause)


@pytest.fixture
def acted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    done: list[int] = []
    lock = threading.Lock()

    def act(ctx: RunContext, step: Step) -> dict[str, Any]:
        with lock:
            done.append(step.n)
        return {}

    handler = Handler(act=act, observe=lambda ctx, step: None, describe=lambda ctx, step: [])
    monkeypatch.setattr(executor, "HANDLERS", {a: handler for a in Action})
    return done


def _serial(n: int, action: Action, hop: int | None) -> Step:
    return Step(n, action, "cp-1" if hop is not None else None, V, None, Reversibility.NONE, hop=hop)


def test_a_pause_stops_before_the_step_it_names_and_nothing_after_it_runs(acted: list[int]) -> None:
    steps = (_serial(1, Action.PREFLIGHT, None), _serial(2, Action.KUBEADM_UPGRADE_APPLY, 0),
             _serial(3, Action.KUBEADM_UPGRADE_APPLY, 1), _serial(4, Action.POSTFLIGHT, None))
    repo = Repo()
    asked: list[int] = []

    def pause(step: Step) -> str | None:
        asked.append(step.n)
        return "the window ends in 5 min" if step.hop == 1 else None

    with pytest.raises(PausedError) as stopped:
        executor.execute(_ctx(steps, repo, pause), {s.n: Record() for s in steps})
    assert stopped.value.step.n == 3 and stopped.value.reason == "the window ends in 5 min"
    assert acted == [1, 2] and asked == [1, 2, 3]
    assert ("start", 3) not in repo.log  # the paused step was never started: it stays pending


def test_a_step_already_running_is_finished_not_paused(acted: list[int]) -> None:
    steps = (_serial(1, Action.KUBEADM_UPGRADE_APPLY, 0), _serial(2, Action.KUBEADM_UPGRADE_APPLY, 1))
    records = {1: Record(StepStatus.RUNNING), 2: Record()}
    with pytest.raises(PausedError):
        executor.execute(_ctx(steps, Repo(), lambda step: "closing"), records)
    assert acted == [1]  # the step a killed process was in is completed; the pause comes at the next


def test_in_a_batch_the_paused_node_starts_nothing_and_the_others_finish(acted: list[int]) -> None:
    per_node = (Action.UPGRADE_KUBEADM, Action.DRAIN, Action.UPGRADE_KUBELET, Action.UNCORDON)
    steps = tuple(Step(10 * i + k, action, node, V, 1, Reversibility.NONE, hop=0)
                  for i, node in ((1, "w-1"), (2, "w-2")) for k, action in enumerate(per_node))
    with pytest.raises(PausedError) as stopped:
        executor.execute(_ctx(steps, Repo(), lambda step: "closing" if step.n == 20 else None),
                         {s.n: Record() for s in steps})
    assert stopped.value.step.node == "w-2"
    assert sorted(acted) == [10, 11, 12, 13]  # w-1 went all the way to its uncordon
