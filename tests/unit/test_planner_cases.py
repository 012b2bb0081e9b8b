"""The planner on hand-written clusters: the paths an SRE would expect, and every refusal."""

from __future__ import annotations

import pytest

from tests.unit.builders import V, cp, inventory, worker
from upgrader.domain.catalog import Catalog
from upgrader.domain.planning import plan_upgrade
from upgrader.domain.plans import Action, HopKind, Strategy, WorkerStrategy
from upgrader.domain.replay import replay
from upgrader.domain.versions import Minor, Version
from upgrader.errors import NoUpgradePathError, SkewViolationError

CATALOG = Catalog.of(Version(1, m, p) for m in range(24, 37) for p in range(0, 6))


def _applies(plan):
    return [(s.node, str(s.version)) for s in plan.steps if s.action is Action.KUBEADM_UPGRADE_APPLY]


def test_control_plane_moves_one_minor_per_hop_at_newest_patch():
    inv = inventory(cp("cp-1", "v1.29.3"), cp("cp-2", "v1.29.3"), worker("w-1", "v1.29.3"))
    plan = plan_upgrade(inv, V("v1.33.2"), CATALOG)
    assert _applies(plan) == [("cp-1", "v1.30.5"), ("cp-1", "v1.31.5"), ("cp-1", "v1.32.5"), ("cp-1", "v1.33.2")]
    replay(inv, plan)


def test_skip_level_workers_jump_from_129_to_132_then_to_target():
    inv = inventory(cp("cp-1", "v1.29.3"), worker("w-1", "v1.29.3"), worker("w-2", "v1.29.3"))
    plan = plan_upgrade(inv, V("v1.33.5"), CATALOG)
    assert plan.worker_upgrades() == {"w-1": (V("v1.32.5"), V("v1.33.5")), "w-2": (V("v1.32.5"), V("v1.33.5"))}


def test_workers_stay_put_across_three_hops_when_skew_allows():
    inv = inventory(cp("cp-1", "v1.30.1"), worker("w-1", "v1.30.1"))
    plan = plan_upgrade(inv, V("v1.33.0"), CATALOG)
    assert plan.worker_upgrades() == {"w-1": (V("v1.33.0"),)}


def test_kubeadm_128_allows_only_one_minor_of_kubelet_skew():
    inv = inventory(cp("cp-1", "v1.25.0"), worker("w-1", "v1.25.0"))
    plan = plan_upgrade(inv, V("v1.28.0"), CATALOG)
    # Before the hop to 1.27, kubeadm v1.27 refuses kubelets older than 1.26, and so on.
    assert plan.worker_upgrades()["w-1"] == (V("v1.26.5"), V("v1.27.5"), V("v1.28.0"))
    replay(inv, plan)


def test_every_minor_strategy_follows_each_hop():
    inv = inventory(cp("cp-1", "v1.30.1"), worker("w-1", "v1.30.1"))
    plan = plan_upgrade(inv, V("v1.32.0"), CATALOG, strategy=Strategy(workers=WorkerStrategy.EVERY_MINOR))
    assert plan.worker_upgrades() == {"w-1": (V("v1.31.5"), V("v1.32.0"))}


def test_minor_target_means_newest_patch_and_skips_are_honoured():
    inv = inventory(cp("cp-1", "v1.30.1"))
    plan = plan_upgrade(inv, Minor(1, 32), CATALOG, skip=frozenset({V("v1.31.5"), V("v1.32.5")}))
    assert plan.target == V("v1.32.4")
    assert _applies(plan) == [("cp-1", "v1.31.4"), ("cp-1", "v1.32.4")]
    assert plan.skipped_versions == (V("v1.31.5"), V("v1.32.5"))


def test_snapshot_precedes_every_apply():
    inv = inventory(cp("cp-1", "v1.30.1"), cp("cp-2", "v1.30.1"))
    plan = plan_upgrade(inv, V("v1.32.0"), CATALOG)
    actions = [s.action for s in plan.steps]
    for i, action in enumerate(actions):
        if action is Action.KUBEADM_UPGRADE_APPLY:
            assert Action.SNAPSHOT in actions[max(0, i - 2) : i]


def test_batches_respect_max_unavailable():
    inv = inventory(cp("cp-1", "v1.30.1"), *(worker(f"w-{i}", "v1.30.1") for i in range(5)))
    plan = plan_upgrade(inv, V("v1.31.0"), CATALOG, strategy=Strategy(max_unavailable=2))
    batches: dict[int, set[str]] = {}
    for s in plan.steps:
        if s.batch is not None and s.node:
            batches.setdefault(s.batch, set()).add(s.node)
    assert sorted(len(v) for v in batches.values()) == [1, 2, 2]


def test_half_upgraded_control_plane_is_levelled_without_second_apply():
    # cp-1 fully upgraded (apiserver and kubelet) to 1.31, the others not yet: an upgrade in progress.
    inv = inventory(cp("cp-1", "v1.31.2", kubelet="v1.31.2"), cp("cp-2", "v1.30.4"), cp("cp-3", "v1.30.4"),
                    worker("w-1", "v1.30.4"))
    plan = plan_upgrade(inv, V("v1.31.2"), CATALOG)
    assert plan.hops[0].kind is HopKind.LEVEL
    assert _applies(plan) == []
    node_steps = [(s.action, s.node) for s in plan.steps if s.action is Action.KUBEADM_UPGRADE_NODE]
    assert node_steps[:2] == [(Action.KUBEADM_UPGRADE_NODE, "cp-2"), (Action.KUBEADM_UPGRADE_NODE, "cp-3")]
    replay(inv, plan)


def test_half_upgraded_then_onward_applies_only_the_next_minor():
    inv = inventory(cp("cp-1", "v1.31.2"), cp("cp-2", "v1.30.4"), worker("w-1", "v1.30.4"))
    plan = plan_upgrade(inv, V("v1.32.1"), CATALOG)
    assert _applies(plan) == [("cp-1", "v1.32.1")]
    replay(inv, plan)


def test_crash_mid_apply_leaves_controller_manager_behind_and_is_levelled():
    inv = inventory(cp("cp-1", "v1.31.2", cm="v1.30.4", kubelet="v1.30.4"), cp("cp-2", "v1.30.4"))
    plan = plan_upgrade(inv, V("v1.31.2"), CATALOG)
    assert {s.node for s in plan.steps if s.action is Action.KUBEADM_UPGRADE_NODE} == {"cp-1", "cp-2"}
    replay(inv, plan)


def test_nothing_to_do_gives_an_empty_plan():
    inv = inventory(cp("cp-1", "v1.31.2"), worker("w-1", "v1.31.2"))
    assert plan_upgrade(inv, V("v1.31.2"), CATALOG).steps == ()


def test_workers_behind_at_target_minor_are_upgraded_alone():
    inv = inventory(cp("cp-1", "v1.31.2"), worker("w-1", "v1.29.0"))
    plan = plan_upgrade(inv, V("v1.31.2"), CATALOG)
    assert plan.worker_upgrades() == {"w-1": (V("v1.31.2"),)}
    assert _applies(plan) == []


def test_someone_elses_cordon_is_kept():
    inv = inventory(cp("cp-1", "v1.30.1"), worker("w-1", "v1.30.1", cordoned=True))
    plan = plan_upgrade(inv, V("v1.31.0"), CATALOG)
    assert not [s for s in plan.steps if s.action is Action.UNCORDON and s.node == "w-1"]
    assert any("w-1" in w and "cordoned" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("nodes", "target", "message"),
    [
        ((cp("cp-1", "v1.31.2"),), "v1.30.5", "older than the control plane"),
        ((cp("cp-1", "v1.31.2"),), "v1.34.9", "not in the release catalog"),
        ((cp("cp-1", "v1.30.2"),), "v1.32.1", "intermediate minor v1.31 has only skipped releases"),
        ((cp("cp-1", "v1.31.2"),), "v1.32.3", "skip list"),
    ],
)
def test_refusals(nodes, target, message):
    skip = frozenset(V(f"v1.31.{p}") for p in range(6)) | {V("v1.32.3")}
    with pytest.raises(NoUpgradePathError, match=message) as info:
        plan_upgrade(inventory(*nodes), V(target), CATALOG, skip=skip if "skip" in message else frozenset())
    assert info.value.exit_code == 3


def test_missing_intermediate_minor():
    catalog = Catalog.of([V("v1.30.0"), V("v1.32.0")])
    with pytest.raises(NoUpgradePathError, match=r"v1\.31 is missing from the release catalog"):
        plan_upgrade(inventory(cp("cp-1", "v1.30.0")), V("v1.32.0"), catalog)


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ((cp("cp-1", "v1.31.0"), worker("w-1", "v1.32.0")), "kubelet newer than every apiserver.*w-1"),
        ((cp("cp-1", "v1.31.0"), cp("cp-2", "v1.29.0")), "more than one minor apart"),
        ((cp("cp-1", "v1.31.0"), worker("w-1", "v1.27.0")), "too old.*w-1"),
        ((cp("cp-1", "v1.26.0"), worker("w-1", "v1.24.0"), worker("w-2", "v1.23.0")), "too old.*w-2"),
        ((cp("cp-1", "v1.31.0"), cp("cp-2", "v1.30.0"), worker("w-1", "v1.31.0")), "worker kubelet newer"),
    ],
)
def test_impossible_states_are_refused(nodes, message):
    with pytest.raises(SkewViolationError, match=message) as info:
        plan_upgrade(inventory(*nodes), V("v1.32.0"), CATALOG)
    assert info.value.exit_code == 3


def test_half_done_hop_at_a_skipped_version_moves_to_an_allowed_patch_instead():
    inv = inventory(cp("cp-1", "v1.31.2"), cp("cp-2", "v1.30.4"), worker("w-1", "v1.30.4"))
    skip = frozenset({V("v1.31.2")})
    plan = plan_upgrade(inv, V("v1.32.1"), CATALOG, skip=skip)
    assert _applies(plan) == [("cp-1", "v1.31.5"), ("cp-1", "v1.32.1")]
    assert V("v1.31.2") not in {s.version for s in plan.steps if s.action is not Action.SNAPSHOT}
    assert V("v1.31.2") in plan.skipped_versions
    replay(inv, plan, skip=skip)


def test_workers_forced_to_move_never_get_a_skipped_current_version():
    inv = inventory(cp("cp-1", "v1.30.2"), worker("w-1", "v1.27.3"))
    skip = frozenset({V("v1.30.2")})
    plan = plan_upgrade(inv, Minor(1, 31), CATALOG, skip=skip)
    assert plan.worker_upgrades()["w-1"][0] == V("v1.30.5")
    replay(inv, plan, skip=skip)


def test_skipped_current_with_no_later_patch_is_refused_not_crashed():
    catalog = Catalog.of([V("v1.30.2"), V("v1.31.0")])
    inv = inventory(cp("cp-1", "v1.30.2"), worker("w-1", "v1.27.3"))
    with pytest.raises(NoUpgradePathError, match="is skipped"):
        plan_upgrade(inv, V("v1.31.0"), catalog, skip=frozenset({V("v1.30.2")}))


def test_levelling_kubelets_are_not_upgraded_twice():
    inv = inventory(cp("cp-1", "v1.31.2", kubelet="v1.30.1"), cp("cp-2", "v1.31.2", kubelet="v1.30.1"),
                    worker("w-1", "v1.30.1"))
    plan = plan_upgrade(inv, V("v1.31.5"), CATALOG)
    kubelets = [(s.node, s.version) for s in plan.steps if s.action is Action.UPGRADE_KUBELET and s.batch is None]
    assert kubelets == [("cp-1", V("v1.31.5")), ("cp-2", V("v1.31.5"))]


def test_levelling_starts_with_a_snapshot():
    inv = inventory(cp("cp-1", "v1.31.2"), cp("cp-2", "v1.30.4"))
    plan = plan_upgrade(inv, V("v1.31.2"), CATALOG)
    assert plan.steps[1].action is Action.SNAPSHOT


def test_minor_target_reached_with_current_patch_skipped_is_nothing_to_do():
    catalog = Catalog.of([V("v1.31.2")])
    inv = inventory(cp("cp-1", "v1.31.2"), worker("w-1", "v1.31.2"))
    assert plan_upgrade(inv, Minor(1, 31), catalog, skip=frozenset({V("v1.31.2")})).steps == ()


def test_another_major_version_is_named():
    with pytest.raises(SkewViolationError, match=r"another major.*w-1"):
        plan_upgrade(inventory(cp("cp-1", "v1.31.0"), worker("w-1", "v2.31.0")), V("v1.32.0"), CATALOG)
