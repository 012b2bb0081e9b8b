"""Property tests: whatever the cluster, catalog, skip list and target, a plan keeps every promise.

Each generated plan is replayed step by step by an independent model (upgrader.domain.replay), and
worker upgrade counts are compared with a brute-force minimum computed here.
"""

from __future__ import annotations

import itertools
import os

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tests.unit.builders import cp, inventory, worker
from upgrader.domain.catalog import Catalog
from upgrader.domain.planning import plan_upgrade
from upgrader.domain.plans import Action, HopKind, Strategy, WorkerStrategy, plan_from_dict
from upgrader.domain.replay import replay
from upgrader.domain.skew import kubelet_may_stay, kubelet_too_old
from upgrader.domain.validation import control_plane_version
from upgrader.domain.versions import Minor, Version
from upgrader.errors import NoUpgradePathError

MINORS = range(24, 38)
SLOW_OK = [HealthCheck.too_slow, HealthCheck.filter_too_much]


@st.composite
def catalogs(draw):
    versions = []
    for minor in MINORS:
        if draw(st.integers(0, 19)) == 0:  # now and then a minor is missing altogether
            continue
        top = draw(st.integers(0, 4))
        versions += [Version(1, minor, p) for p in range(top + 1)]
    assume(any(v.minor < 37 for v in versions))
    return Catalog.of(versions)


@st.composite
def scenarios(draw):
    catalog = draw(catalogs())
    current = draw(st.sampled_from([v for v in catalog.versions if v.minor < 37]))
    n_cp = draw(st.integers(1, 3))
    lagging = draw(st.integers(0, n_cp - 1))  # a crashed run: some CP nodes still on the previous minor
    older = [v for v in catalog.versions if v.minor == current.minor - 1]
    nodes = []
    for i in range(n_cp):
        if i and i <= lagging and older:
            lag = draw(st.sampled_from(older))
            nodes.append(cp(f"cp-{i}", str(lag)))
        else:
            # a crash in the middle of kubeadm apply can leave controller-manager/scheduler behind
            cm = str(draw(st.sampled_from(older))) if older and not i and draw(st.integers(0, 4)) == 0 else None
            nodes.append(cp(f"cp-{i}", str(current), cm=cm, kubelet=str(draw(_kubelet(catalog, current, current)))))
    oldest = min(n.components.apiserver for n in nodes)
    for i in range(draw(st.integers(0, 5))):
        nodes.append(worker(f"w-{i}", str(draw(_kubelet(catalog, oldest, current))),
                            cordoned=draw(st.booleans())))
    inv = inventory(*nodes)
    target_minor = draw(st.integers(current.minor, 37))
    patch = draw(st.integers(0, 5))
    target = Version(1, target_minor, patch) if draw(st.booleans()) else Minor(1, target_minor)
    skip = frozenset(draw(st.sets(st.sampled_from(catalog.versions), max_size=6)))
    if draw(st.integers(0, 5)) == 0:
        skip |= {current}  # a CVE in the very patch the cluster runs
    strategy = Strategy(workers=draw(st.sampled_from(list(WorkerStrategy))), max_unavailable=draw(st.integers(1, 3)))
    return inv, target, catalog, skip, strategy


@st.composite
def _kubelet(draw, catalog, ceiling, newest):
    options = [v for v in catalog.versions if v.line <= ceiling.line and v <= ceiling
               and not kubelet_too_old(v.line, newest_apiserver=newest.line)]
    return draw(st.sampled_from(options or [ceiling]))


def _expected_refusal(inv, target, catalog, skip) -> bool:
    """Independently: is there a reason this request has no valid plan?"""
    current = control_plane_version(inv)
    if isinstance(target, Minor):
        allowed = [v for v in catalog.patches(target) if v not in skip]
        if not allowed and target != current.line:
            return True
        if not allowed:
            return False
        target = max(allowed[-1], current) if target == current.line else allowed[-1]
    if target < current or (target in skip and target != current) or any(n.kubelet > target for n in inv.nodes):
        return True
    if target != current and target not in catalog:
        return True
    return any(
        not [v for v in catalog.patches(Minor(1, m)) if v not in skip] for m in range(current.minor + 1, target.minor)
    )


def _minimum_worker_upgrades(kubelet, cp_versions, target, catalog, skip) -> int:
    """Brute force: before each hop, stay or move to ANY allowed version up to where the control plane is."""
    best: dict[Version, int] = {kubelet: 0}
    for here, hop in itertools.pairwise(cp_versions):
        choices = {v for v in catalog.versions if v <= here and v not in skip} | ({here} - skip)
        nxt: dict[Version, int] = {}
        for version, count in best.items():
            options = [(version, count)] + [(v, count + 1) for v in choices if v > version]
            for choice, cost in options:
                if kubelet_may_stay(choice.line, hop=hop.line) and cost < nxt.get(choice, 99):
                    nxt[choice] = cost
        best = nxt
    return min(count + (version != target) for version, count in best.items())


@settings(max_examples=int(os.environ.get("PLANNER_EXAMPLES", "400")), deadline=None, suppress_health_check=SLOW_OK)
@given(scenarios())
def test_every_plan_replays_cleanly_or_the_refusal_is_justified(scenario):
    inv, target, catalog, skip, strategy = scenario
    current = control_plane_version(inv)
    try:
        plan = plan_upgrade(inv, target, catalog, skip=skip, strategy=strategy)
    except NoUpgradePathError as e:
        banned_current = current in skip and "is skipped" in e.message
        assert banned_current or _expected_refusal(inv, target, catalog, skip), f"unjustified refusal: {e}"
        event("refused")
        return
    event("planned" if plan.steps else "nothing to do")
    assert not _expected_refusal(inv, target, catalog, skip)
    # skew rules, one minor per apply, snapshot before apply, drains, final versions, skipped versions, cordons
    replay(inv, plan, skip=skip)
    used = {s.version for s in plan.steps if s.version and s.action is not Action.SNAPSHOT}
    assert not used & skip
    upgrade_hops = [h for h in plan.hops if h.kind is HopKind.UPGRADE]
    assert [h.minor.minor for h in upgrade_hops] == list(
        range(upgrade_hops[0].minor.minor, upgrade_hops[-1].minor.minor + 1)
    ) if upgrade_hops else True
    batches: dict[int, set[str]] = {}
    for s in plan.steps:
        if s.batch is not None and s.node:
            batches.setdefault(s.batch, set()).add(s.node)
    assert all(len(nodes) <= strategy.max_unavailable for nodes in batches.values())
    assert all(not n.startswith("cp-") for nodes in batches.values() for n in nodes)
    if strategy.workers is WorkerStrategy.SKIP_LEVEL and plan.steps:
        cp_versions = [current] + [h.version for h in upgrade_hops]
        counts = plan.worker_upgrades()
        for node in inv.workers:
            least = _minimum_worker_upgrades(node.kubelet, cp_versions, plan.target, catalog, skip)
            assert len(counts.get(node.name, ())) == least


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW_OK)
@given(scenarios())
def test_planning_is_deterministic_and_its_document_round_trips(scenario):
    inv, target, catalog, skip, strategy = scenario
    try:
        first = plan_upgrade(inv, target, catalog, skip=skip, strategy=strategy)
    except NoUpgradePathError:
        return
    assert plan_upgrade(inv, target, catalog, skip=skip, strategy=strategy) == first
    assert plan_from_dict(first.to_dict()) == first  # what the ledger stores reads back whole
