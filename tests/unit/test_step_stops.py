"""Ctrl-C while a drain waits on a PodDisruptionBudget stops the step the way every other operator stop does
(StopRequestedError: the step is recorded, the run interrupted and its resume command printed), not as a
bare KeyboardInterrupt that leaves the step running and prints no next step."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from upgrader.domain.plans import Action, Plan, Reversibility, Step, Strategy
from upgrader.domain.preflight import CORDON_ANNOTATION
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions, Hooks, RunContext, StopRequestedError
from upgrader.engine.steps import HANDLERS
from upgrader.fakes import FakeClock, FakeClusterApi

DRAIN = Step(11, Action.DRAIN, "w-1", None, 1, Reversibility.UNCORDON)


def _ctx(api: FakeClusterApi, clock: FakeClock) -> RunContext:
    plan = Plan(cluster="prod", source_version=Version(1, 30, 6), target=Version(1, 31, 4), source_fingerprint="x",
                strategy=Strategy(), skipped_versions=(), hops=(), steps=(DRAIN,))

    def unused(*args: Any) -> Any:
        raise AssertionError("not used here")

    return RunContext(run_id=5, token=1, cluster="prod", plan=plan, options=ApplyOptions(drain_timeout=600),
                      unit_of_work=unused, api=api, transports=unused, clock=clock,
                      hooks=Hooks(preflight=unused, snapshot=unused, etcd_health=unused), stop=threading.Event())


def _blocked_drain() -> tuple[FakeClusterApi, FakeClock]:
    clock = FakeClock()
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w-1"}, "spec": {}}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "db-0", "namespace": "demo", "uid": "uid-db-0", "labels": {"app": "db"},
                        "ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": True}]},
           "spec": {"nodeName": "w-1"}, "status": {"phase": "Running"}}
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db", "namespace": "demo"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}}
    api = FakeClusterApi({"cluster": "prod", "nodes": []}, nodes=[node], pods=[pod], pdbs=[pdb], clock=clock)
    return api, clock


def test_ctrl_c_in_a_drain_held_by_a_budget_is_an_operator_stop() -> None:
    api, clock = _blocked_drain()
    ctx = _ctx(api, clock)
    began = clock.monotonic()
    api.after(12, ctx.stop.set)  # the operator presses Ctrl-C while evictions are being refused
    with pytest.raises(StopRequestedError):
        HANDLERS[Action.DRAIN].act(ctx, DRAIN)
    assert clock.monotonic() - began < 20  # it stopped then, not at the drain's timeout
    node = api.get_node("w-1")
    assert node is not None and node["spec"]["unschedulable"] is True
    assert node["metadata"]["annotations"][CORDON_ANNOTATION] == "5"  # cordoned by this run, for resume
    assert [p["metadata"]["name"] for p in api.list_node_pods("w-1")] == ["db-0"]


def test_a_keyboard_interrupt_nobody_asked_for_is_not_taken_for_a_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    api, clock = _blocked_drain()

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # SIGTERM, or a second Ctrl-C: stop at once

    monkeypatch.setattr("upgrader.engine.drain.drain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        HANDLERS[Action.DRAIN].act(_ctx(api, clock), DRAIN)
