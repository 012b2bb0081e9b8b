"""Health gates: several consecutive good readings, a flap starts the count again, a timeout names what failed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from upgrader.domain.plans import Plan, Strategy
from upgrader.domain.versions import Version
from upgrader.engine import gates
from upgrader.engine.context import ApplyOptions, Hooks, RunContext
from upgrader.errors import ClusterUnreachableError
from upgrader.fakes import FakeClock, FakeClusterApi


def _ctx(api: FakeClusterApi, clock: FakeClock, **options: Any) -> RunContext:
    plan = Plan(cluster="prod", source_version=Version(1, 30, 6), target=Version(1, 31, 4), source_fingerprint="x",
                strategy=Strategy(), skipped_versions=(), hops=(), steps=())

    def unused(*args: Any) -> Any:
        raise AssertionError("not used by gates")

    return RunContext(run_id=1, token=1, cluster="prod", plan=plan, options=ApplyOptions(**options),
                      unit_of_work=unused, api=api, transports=unused, clock=clock,
                      hooks=Hooks(preflight=unused, snapshot=unused, etcd_health=lambda: (True, "3/3 healthy")),
                      stop=threading.Event())


def _node(name: str, ready: bool, version: str = "v1.31.4") -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": str(ready)}],
                                                   "nodeInfo": {"kubeletVersion": version}}}


def test_a_gate_passes_after_the_required_consecutive_good_readings() -> None:
    api, clock = FakeClusterApi(nodes=[_node("w1", True)]), FakeClock()
    out = gates.wait_for(_ctx(api, clock, gate_passes=3, gate_interval=2.0), "w1 Ready",
                         [gates.nodes_at(api, ["w1"], Version(1, 31, 4))])
    assert out["readings"] == 3 and out["passes"] == 3
    assert clock.slept == [2.0, 2.0]


def test_a_flapping_signal_starts_the_count_again() -> None:
    api, clock = FakeClusterApi(), FakeClock()
    answers = iter([True, True, False, True, True, True])

    def flapping() -> gates.Reading:
        return gates.Reading(next(answers), "flap")

    out = gates.wait_for(_ctx(api, clock, gate_passes=3, gate_interval=1.0), "flap", [flapping])
    assert out["readings"] == 6


def test_a_gate_that_never_passes_fails_at_its_timeout_naming_the_failing_check() -> None:
    api, clock = FakeClusterApi(nodes=[_node("w1", False)]), FakeClock()
    with pytest.raises(gates.GateFailedError) as failed:
        gates.wait_for(_ctx(api, clock, gate_timeout=30.0, gate_interval=5.0), "w1 Ready",
                       [gates.nodes_at(api, ["w1"], Version(1, 31, 4))])
    assert "w1 NotReady" in failed.value.message and "30s" in failed.value.message
    assert failed.value.exit_code == 6
    assert 25.0 <= sum(clock.slept) <= 35.0


def test_a_kubelet_at_the_wrong_version_is_not_good_enough() -> None:
    api = FakeClusterApi(nodes=[_node("w1", True, "v1.30.6")])
    reading = gates.nodes_at(api, ["w1"], Version(1, 31, 4))()
    assert not reading.ok and "w1 kubelet v1.30.6" in reading.message


def test_an_unreachable_api_is_a_bad_reading_not_a_crash() -> None:
    api, clock = FakeClusterApi(unreachable="connection refused"), FakeClock()
    with pytest.raises(gates.GateFailedError) as failed:
        gates.wait_for(_ctx(api, clock, gate_timeout=4.0, gate_interval=2.0), "readyz", [gates.readyz(api)])
    assert "connection refused" in failed.value.message
    with pytest.raises(ClusterUnreachableError):
        gates.readyz(api)()


def test_mirror_pods_must_run_the_expected_tag_and_be_ready() -> None:
    def pod(component: str, tag: str, ready: bool) -> dict[str, Any]:
        return {"metadata": {"labels": {"component": component, "tier": "control-plane"}},
                "spec": {"nodeName": "cp-1", "containers": [{"image": f"registry.k8s.io/{component}:{tag}"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]}}

    class Api(FakeClusterApi):
        def __init__(self, pods: list[dict[str, Any]]) -> None:
            super().__init__()
            self.cp_pods = pods

        def list_control_plane_pods(self) -> list[dict[str, Any]]:
            return self.cp_pods

    good = [pod(c, "v1.31.4", True) for c in gates.CONTROL_PLANE]
    assert gates.mirror_pods_at(Api(good), ["cp-1"], Version(1, 31, 4))().ok
    stale = [pod("kube-apiserver", "v1.30.6", True), *good[1:]]
    reading = gates.mirror_pods_at(Api(stale), ["cp-1"], Version(1, 31, 4))()
    assert not reading.ok and "kube-apiserver on cp-1 runs registry.k8s.io/kube-apiserver:v1.30.6" in reading.message
    unready = [pod("kube-scheduler", "v1.31.4", False), *good[:2]]
    assert "not ready" in gates.mirror_pods_at(Api(unready), ["cp-1"], Version(1, 31, 4))().message


def test_stop_interrupts_a_gate_between_readings() -> None:
    api, clock = FakeClusterApi(nodes=[_node("w1", False)]), FakeClock()
    ctx = _ctx(api, clock)
    ctx.stop.set()
    from upgrader.engine.context import StopRequestedError

    with pytest.raises(StopRequestedError):
        gates.wait_for(ctx, "w1", [gates.nodes_at(api, ["w1"], None)])
