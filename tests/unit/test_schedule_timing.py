"""Step estimates from history, a plan's time with parallel batches, and the safe points of a closing window."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.builders import cp, inventory, worker
from upgrader.data import builtin_catalog
from upgrader.domain.planning import plan_upgrade
from upgrader.domain.plans import Action, Plan, Reversibility, Step, Strategy, WorkerStrategy
from upgrader.domain.schedule import DEFAULT_STEP_SECONDS, estimate, hop_starts, pause_reason, step_estimates
from upgrader.domain.versions import Minor, Version

CLOSES = datetime(2026, 12, 5, 5, 59, tzinfo=UTC)


def two_hops(*, workers: int = 3, max_unavailable: int = 2, every_minor: bool = False) -> Plan:
    """cp-1, cp-2 and workers at v1.31.2 to v1.33 (two hops; workers in batches of max_unavailable)."""
    inv = inventory(cp("cp-1", "v1.31.2"), cp("cp-2", "v1.31.2"),
                    *(worker(f"w{i + 1}", "v1.31.2") for i in range(workers)))
    strategy = Strategy(workers=WorkerStrategy.EVERY_MINOR if every_minor else WorkerStrategy.SKIP_LEVEL,
                        max_unavailable=max_unavailable)
    return plan_upgrade(inv, Minor(1, 33), builtin_catalog(), strategy=strategy)


def step(n: int, action: Action, node: str | None, batch: int | None = None) -> Step:
    return Step(n, action, node, Version(1, 33, 1), batch, Reversibility.NONE, hop=0)


def test_defaults_cover_every_action_with_the_documented_seconds() -> None:
    assert set(DEFAULT_STEP_SECONDS) == {str(a) for a in Action}
    assert {k: DEFAULT_STEP_SECONDS[k] for k in (
        "kubeadm-upgrade-apply", "kubeadm-upgrade-node", "drain", "snapshot", "health-gate", "upgrade-kubeadm",
        "upgrade-kubelet", "uncordon", "preflight", "postflight", "restore-etcd")} == {
        "kubeadm-upgrade-apply": 300, "kubeadm-upgrade-node": 180, "drain": 300, "snapshot": 60, "health-gate": 120,
        "upgrade-kubeadm": 60, "upgrade-kubelet": 60, "uncordon": 10, "preflight": 60, "postflight": 60,
        "restore-etcd": 60}


def test_history_counts_from_three_samples_as_their_median() -> None:
    estimates = step_estimates({
        "drain": [40.0, 1000.0, 50.0],  # the median shrugs off one slow drain
        "kubeadm-upgrade-apply": [200.0, 240.0],  # too few: the default
        "snapshot": [10.0, float("nan"), -5.0, 12.0],  # two usable samples: the default
        "health-gate": [30.0, 50.0, 40.0, 20.0],
        "something-new": [1.0, 2.0, 3.0],
        "something-rare": [1.0],
    })
    assert (estimates["drain"], estimates["kubeadm-upgrade-apply"], estimates["snapshot"]) == (50.0, 300.0, 60.0)
    assert (estimates["health-gate"], estimates["something-new"], estimates["something-rare"]) == (35.0, 2.0, 60.0)
    assert estimates["uncordon"] == 10.0  # no history at all: the default
    assert step_estimates({}) == dict(DEFAULT_STEP_SECONDS)


def test_a_batch_costs_its_slowest_node_plus_its_gate_and_serial_steps_add_up() -> None:
    steps = [
        step(1, Action.SNAPSHOT, "cp-1"),  # 60
        step(2, Action.DRAIN, "a", batch=1), step(3, Action.UPGRADE_KUBELET, "a", batch=1),  # a: 360
        step(4, Action.UNCORDON, "b", batch=1),  # b: 10
        step(5, Action.HEALTH_GATE, None, batch=1),  # 120 after the nodes
        step(6, Action.UPGRADE_KUBELET, "c", batch=2),  # the next batch: 60
        step(7, Action.POSTFLIGHT, None),  # 60
    ]
    assert estimate(steps, DEFAULT_STEP_SECONDS) == 60 + 360 + 120 + 60 + 60
    assert estimate(steps, {"drain": 30.0}) == 60 + 90 + 120 + 60 + 60  # unlisted actions: their defaults
    assert estimate([], DEFAULT_STEP_SECONDS) == 0.0


def test_a_two_hop_plan_with_two_parallel_workers_is_estimated_per_batch() -> None:
    plan = two_hops()
    hop2 = [s for s in plan.steps if s.hop == 1]
    # control plane of the hop: 60+60+300+120 + 60+180+120 + 2*(300+60+10) = 1640;
    # batch 1 (w1, w2 at once): 610 + 120 gate; batch 2 (w3): 610 + 120 gate
    assert estimate(hop2, DEFAULT_STEP_SECONDS) == 1640 + 730 + 730


def test_a_hop_that_cannot_finish_before_the_window_closes_does_not_start() -> None:
    plan = two_hops()
    first = plan.steps[hop_starts(plan)[1] - 1]
    assert (first.n, first.action, first.hop) == (15, Action.SNAPSHOT, 1)
    reason = pause_reason(first, plan, DEFAULT_STEP_SECONDS, CLOSES, CLOSES - timedelta(minutes=49))
    assert reason == "hop 2 (v1.33.13) needs ~52 min; the window ends in 49 min (05:59 UTC)"
    assert pause_reason(first, plan, DEFAULT_STEP_SECONDS, CLOSES, CLOSES - timedelta(seconds=3100)) is None
    fast = step_estimates({"drain": [5.0] * 3, "kubeadm-upgrade-apply": [100.0] * 3})
    assert pause_reason(first, plan, fast, CLOSES, CLOSES - timedelta(minutes=49)) is None


def test_a_worker_that_cannot_finish_before_the_window_closes_is_not_drained() -> None:
    plan = two_hops()
    w3_first = next(s for s in plan.steps if s.node == "w3")
    assert (w3_first.batch, w3_first.action) == (2, Action.UPGRADE_KUBEADM)
    reason = pause_reason(w3_first, plan, DEFAULT_STEP_SECONDS, CLOSES, CLOSES - timedelta(minutes=5))
    assert reason == "node w3 (batch 2, v1.33.13) needs ~11 min; the window ends in 5 min (05:59 UTC)"
    assert pause_reason(w3_first, plan, DEFAULT_STEP_SECONDS, CLOSES, CLOSES - timedelta(seconds=610)) is None
    closed = pause_reason(w3_first, plan, DEFAULT_STEP_SECONDS, CLOSES, CLOSES + timedelta(minutes=1))
    assert closed == "node w3 (batch 2, v1.33.13) needs ~11 min; the window closed at 05:59 UTC"


def test_never_inside_a_hop_control_plane_or_with_a_node_drained() -> None:
    plan = two_hops()
    long_closed = CLOSES + timedelta(days=1)
    for n in (3, 4, 9, 10, 17, 22, 30, 31, 38, 45):  # kubeadm apply, cp drains, w1's drain, gates, postflight
        s = plan.steps[n - 1]
        assert pause_reason(s, plan, DEFAULT_STEP_SECONDS, CLOSES, long_closed) is None, s


@given(workers=st.integers(0, 6), max_unavailable=st.integers(1, 4), every_minor=st.booleans())
def test_only_hop_starts_and_a_node_first_step_in_its_batch_are_safe_points(
        workers: int, max_unavailable: int, every_minor: bool) -> None:
    plan = two_hops(workers=workers, max_unavailable=max_unavailable, every_minor=every_minor)
    starts = set(hop_starts(plan).values())
    firsts = {min(s.n for s in plan.steps if s.batch == b and s.node == node)
              for b, node in {(s.batch, s.node) for s in plan.steps if s.batch is not None and s.node}}
    drained: set[str] = set()
    for s in plan.steps:
        reason = pause_reason(s, plan, DEFAULT_STEP_SECONDS, CLOSES, CLOSES)
        assert (reason is not None) == (s.n in starts | firsts), s
        if reason is not None:
            assert not drained, (s, drained)  # in plan order, no node is left drained at a stop
        if s.action is Action.DRAIN and s.node:
            drained.add(s.node)
        if s.action is Action.UNCORDON and s.node:
            drained.discard(s.node)


@given(workers=st.integers(0, 6), max_unavailable=st.integers(1, 4), every_minor=st.booleans())
def test_a_plan_costs_no_more_than_all_its_steps_and_exactly_that_one_node_at_a_time(
        workers: int, max_unavailable: int, every_minor: bool) -> None:
    plan = two_hops(workers=workers, max_unavailable=max_unavailable, every_minor=every_minor)
    serial = sum(DEFAULT_STEP_SECONDS[str(s.action)] for s in plan.steps)
    total = estimate(plan.steps, DEFAULT_STEP_SECONDS)
    assert total <= serial
    if max_unavailable == 1 or workers <= 1:
        assert math.isclose(total, serial)
    hops = [estimate([s for s in plan.steps if s.hop == h], DEFAULT_STEP_SECONDS) for h in range(len(plan.hops))]
    outside = sum(DEFAULT_STEP_SECONDS[str(s.action)] for s in plan.steps if s.hop is None)
    assert math.isclose(total, sum(hops) + outside)
