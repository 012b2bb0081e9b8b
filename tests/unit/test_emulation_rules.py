"""The two-step rules: the emulation range as the binaries' --help states it, which hops can soak,
etcd's minimum patch before a minor move, and the points of no return a plan lists."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.builders import V, cp, inventory, worker
from tests.unit.test_planner_properties import scenarios
from upgrader.domain.catalog import Catalog
from upgrader.domain.emulation import (
    EMULATION_REPORTED_FROM,
    EmulationRange,
    EtcdVersion,
    etcd_blockers,
    parse_emulation_range,
    why_not_two_step,
)
from upgrader.domain.planning import TwoStep, plan_upgrade
from upgrader.domain.plans import Action, HopKind, NoReturnKind, Reversibility, plan_from_dict
from upgrader.domain.replay import replay
from upgrader.domain.versions import Minor, Version
from upgrader.errors import NoUpgradePathError

# component-base's wording, as `kube-apiserver --help` prints it (pflag: flag, padding, text; the
# continuation lines indented to the text column). v1.31 put the range on its own line, before
# "If the component ..." with no newline; v1.33 on keep it on the "Options are:" line.
HELP_131 = """      --egress-selector-config-file string     File with apiserver egress selector configuration.
      --emulated-version strings               The versions different components emulate their capabilities (APIs, features, ...) of.
                                               If set, the component will emulate the behavior of this version instead of the underlying binary version.
                                               Version format could only be major.minor, for example: '--emulated-version=wardle=1.2,kube=1.31'. Options are:
                                               kube=1.31..1.31 (default=1.31)If the component is not specified, defaults to "kube"
      --enable-admission-plugins strings       admission plugins that should be enabled in addition to default enabled ones
"""  # noqa: E501
HELP_134 = """      --disabled-metrics strings               This flag provides an escape hatch for misbehaving metrics.
      --emulated-version strings               The versions different components emulate their capabilities (APIs, features, ...) of.
                                               If set, the component will emulate the behavior of this version instead of the underlying binary version.
                                               Version format could only be major.minor, for example: '--emulated-version=wardle=1.2,kube=1.31'. Options are: kube=1.31..1.34(default:1.34)
                                               If the component is not specified, defaults to "kube"
      --emulation-forward-compatible           If true, for any beta+ APIs enabled by default or by --runtime-config at the emulation version, their future versions with higher priority/stability will be auto enabled even if they introduced after the emulation version.
"""  # noqa: E501


def _help(low: Minor, high: Minor, *, modern: bool) -> str:
    text = HELP_134 if modern else HELP_131
    old = "kube=1.31..1.34(default:1.34)" if modern else "kube=1.31..1.31 (default=1.31)"
    new = (f"kube={low.major}.{low.minor}..{high.major}.{high.minor}(default:{high.major}.{high.minor})" if modern
           else f"kube={low.major}.{low.minor}..{high.major}.{high.minor} (default={high.major}.{high.minor})")
    return text.replace(old, new)


def test_the_real_help_texts_give_their_ranges():
    assert parse_emulation_range(HELP_131) == EmulationRange(Minor(1, 31), Minor(1, 31))
    assert parse_emulation_range(HELP_134) == EmulationRange(Minor(1, 31), Minor(1, 34))


def test_the_example_in_the_text_is_not_a_range_and_no_flag_means_no_range():
    example_only = HELP_134.replace("Options are: kube=1.31..1.34(default:1.34)", "Options are:")
    assert parse_emulation_range(example_only) is None
    assert parse_emulation_range("      --etcd-servers strings   List of etcd servers\n") is None
    assert parse_emulation_range("") is None
    # a range further down, in another flag's paragraph, is not this flag's
    assert parse_emulation_range(example_only + "      --other string  kube=1.20..1.30\n") is None


def test_several_components_pick_kube():
    text = HELP_134.replace("Options are: kube=1.31..1.34(default:1.34)",
                            "Options are: wardle=1.2..1.4(default:1.4)\nkube=1.32..1.35(default:1.35)")
    assert parse_emulation_range(text) == EmulationRange(Minor(1, 32), Minor(1, 35))


minors = st.integers(20, 60).map(lambda m: Minor(1, m))


@given(low=minors, span=st.integers(0, 4), modern=st.booleans(), width=st.integers(20, 200), data=st.data())
def test_the_range_survives_any_wrapping_and_indentation(low, span, modern, width, data):
    high = Minor(1, low.minor + span)
    text = _help(low, high, modern=modern)
    start, end = text.index("--emulated-version"), text.index("defaults to")
    words = text[start:end].split()
    # re-wrap the paragraph as a narrower or wider terminal would, with any indentation
    indent = " " * data.draw(st.integers(1, 60))
    lines, line = [], words[0]
    for word in words[1:]:
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line += " " + word
    lines.append(line)
    wrapped = text[:start] + ("\n" + indent).join(lines) + " " + text[end:]
    assert parse_emulation_range(wrapped) == EmulationRange(low, high)


@given(old=minors, new=minors, low=minors, span=st.integers(0, 5))
def test_a_hop_is_two_step_able_exactly_when_the_new_binary_emulates_the_old_minor(old, new, low, span):
    emulation = EmulationRange(low, Minor(1, low.minor + span))
    why = why_not_two_step(old, new, emulation)
    able = (new == old.next() and new >= EMULATION_REPORTED_FROM and emulation.high == new
            and emulation.low <= old)
    assert (why is None) == able
    assert why_not_two_step(old, new, None) is not None


def test_the_ranges_domain_md_states():
    # 1.32 can emulate 1.31 but /version has no emulation fields to verify it by; 1.33 on can
    assert why_not_two_step(Minor(1, 31), Minor(1, 32), EmulationRange(Minor(1, 31), Minor(1, 32))) is not None
    assert why_not_two_step(Minor(1, 33), Minor(1, 34), EmulationRange(Minor(1, 31), Minor(1, 34))) is None
    assert why_not_two_step(Minor(1, 34), Minor(1, 35), EmulationRange(Minor(1, 32), Minor(1, 35))) is None
    assert "only 1.34..1.34" in str(why_not_two_step(Minor(1, 33), Minor(1, 34),
                                                      EmulationRange(Minor(1, 34), Minor(1, 34))))


@pytest.mark.parametrize(("tag", "desired", "blocked"), [
    ("3.5.24-0", "3.6.5-0", True),
    ("3.5.31-0", "3.6.5-0", True),
    ("3.5.32-0", "3.6.5-0", False),
    ("3.6.10-0", "3.7.0-0", True),
    ("3.6.11-0", "3.7.0-0", False),
    ("3.5.24-0", "3.5.25-0", False),  # within a minor: no prerequisite
    ("3.5.32-0", "3.7.0-0", True),  # two minors at once
])
def test_etcd_minimum_patch_before_a_minor_move(tag, desired, blocked):
    found = etcd_blockers({"cp-1": EtcdVersion.from_tag(tag)}, EtcdVersion.from_tag(desired))
    assert bool(found) == blocked


@given(patch=st.integers(0, 60), members=st.integers(1, 5), laggard=st.integers(0, 4))
def test_one_member_below_the_patch_blocks_the_move_and_is_named(patch, members, laggard):
    versions = {f"cp-{i}": EtcdVersion(3, 5, 40) for i in range(members)}
    name = f"cp-{laggard % members}"
    versions[name] = EtcdVersion(3, 5, patch)
    found = etcd_blockers(versions, EtcdVersion(3, 6, 5))
    assert (found != []) == (patch < 32)
    assert all(line.startswith(name) for line in found)


def test_an_unknown_etcd_version_blocks():
    assert etcd_blockers({"cp-1": EtcdVersion.from_tag("sha256:abc")}, EtcdVersion(3, 6, 5))


CATALOG = Catalog.of(Version(1, m, p) for m in range(24, 38) for p in range(0, 6))


def domain_md_range(version: Version) -> EmulationRange:
    """DOMAIN.md's statement of the ranges (for tests only: upgrader reads them from the binaries)."""
    m = version.line
    if m.minor <= 31:
        return EmulationRange(m, m)
    if m.minor == 32:
        return EmulationRange(Minor(1, 31), m)
    return EmulationRange(Minor(1, max(31, m.minor - 3)), m)


def test_133_to_134_soaks_with_etcd_held_and_lists_its_points_of_no_return():
    inv = inventory(cp("cp-1", "v1.33.2"), cp("cp-2", "v1.33.2"), worker("w-1", "v1.33.2"))
    plan = plan_upgrade(inv, V("v1.34.5"), CATALOG, two_step=TwoStep({V("v1.34.5"): domain_md_range(V("v1.34.5"))}))
    (hop,) = plan.hops
    assert hop.emulate == Minor(1, 33) and hop.hold_etcd
    actions = [s.action for s in plan.steps]
    soak, finalize = actions.index(Action.SOAK), actions.index(Action.FINALIZE_EMULATED_VERSION)
    assert soak + 1 == finalize
    assert actions.index(Action.EMULATED_UPGRADE_APPLY) < actions.index(Action.EMULATED_UPGRADE_NODE) < soak
    assert Action.KUBEADM_UPGRADE_APPLY not in actions
    assert all(s.reversibility is Reversibility.EMULATED_VERSION for s in plan.steps
               if s.action in (Action.EMULATED_UPGRADE_APPLY, Action.EMULATED_UPGRADE_NODE, Action.SOAK))
    # no kubelet moves before finalize: kubelets may not be newer than the emulated version
    assert all(actions.index(Action.FINALIZE_EMULATED_VERSION) < s.n - 1 for s in plan.steps
               if s.action is Action.UPGRADE_KUBELET)
    kinds = {p.kind for p in plan.points_of_no_return}
    assert kinds == {NoReturnKind.EMULATED_VERSION_RAISED, NoReturnKind.ETCD_MINOR_UPGRADE,
                     NoReturnKind.STORAGE_VERSION_MIGRATION}
    assert {p.step for p in plan.points_of_no_return} == {finalize + 1}
    assert plan.soak_seconds == 6 * 3600
    assert plan_from_dict(plan.to_dict()) == plan
    replay(inv, plan)


def test_a_hop_whose_range_could_not_be_read_stays_plain_and_says_why():
    inv = inventory(cp("cp-1", "v1.33.2"), worker("w-1", "v1.33.2"))
    plan = plan_upgrade(inv, V("v1.34.5"), CATALOG,
                        two_step=TwoStep({V("v1.34.5"): "node cp-1 has no ctr"}))
    assert plan.hops[0].emulate is None
    assert Action.SOAK not in [s.action for s in plan.steps]
    assert any("not two-step: node cp-1 has no ctr" in w for w in plan.warnings)
    # the plain hop's apply is where going back starts to need the snapshot
    apply = next(s.n for s in plan.steps if s.action is Action.KUBEADM_UPGRADE_APPLY)
    assert {p.step for p in plan.points_of_no_return} == {apply}


def test_patch_hops_have_no_point_of_no_return():
    inv = inventory(cp("cp-1", "v1.34.1"), worker("w-1", "v1.34.1"))
    plan = plan_upgrade(inv, V("v1.34.5"), CATALOG, two_step=TwoStep({}))
    assert plan.points_of_no_return == ()
    assert plan.hops[0].emulate is None


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
          deadline=None)
@given(scenario=scenarios(), readable=st.booleans())
def test_every_two_step_plan_keeps_its_promises(scenario, readable):
    inv, target, catalog, skip, strategy = scenario
    ranges = {v: (domain_md_range(v) if readable else "unreachable") for v in catalog.versions}
    try:
        plan = plan_upgrade(inv, target, catalog, skip=skip, strategy=strategy, two_step=TwoStep(ranges))
    except NoUpgradePathError:
        return
    replay(inv, plan, skip=skip)  # soak before finalize, no kubelet above the emulated minor, none left emulating
    previous = plan.source_version.line
    for index, hop in enumerate(plan.hops):
        expected = (readable and hop.kind is HopKind.UPGRADE and hop.minor == previous.next()
                    and hop.minor >= EMULATION_REPORTED_FROM)
        assert (hop.emulate is not None) == expected
        assert hop.hold_etcd == (expected and hop.minor in (Minor(1, 34), Minor(1, 37)))
        raised = [p for p in plan.points_of_no_return if p.hop == index
                  and p.kind is NoReturnKind.EMULATED_VERSION_RAISED]
        assert len(raised) == (1 if expected else 0)
        etcd = [p for p in plan.points_of_no_return if p.hop == index and p.kind is NoReturnKind.ETCD_MINOR_UPGRADE]
        moved = hop.kind is HopKind.UPGRADE and hop.minor != previous and hop.minor in (Minor(1, 34), Minor(1, 37))
        assert len(etcd) == (1 if moved else 0)
        previous = hop.minor
    for point in plan.points_of_no_return:
        assert plan.steps[point.step - 1].action in (Action.KUBEADM_UPGRADE_APPLY, Action.FINALIZE_EMULATED_VERSION)
    assert plan_from_dict(plan.to_dict()) == plan
    assert re.fullmatch(r"[0-9.]+", str(plan.soak_seconds))


@pytest.mark.parametrize(("etcd", "warned"), [("3.5.15-0", True), ("3.5.31-0", True), ("3.5.32-0", False)])
def test_the_plan_warns_when_etcd_is_below_the_patch_its_minor_move_needs(etcd, warned):
    from dataclasses import replace

    node = cp("cp-1", "v1.33.2")
    assert node.components is not None
    inv = inventory(replace(node, components=replace(node.components, etcd=etcd)), worker("w-1", "v1.33.2"))
    plan = plan_upgrade(inv, V("v1.34.5"), CATALOG, two_step=TwoStep({V("v1.34.5"): domain_md_range(V("v1.34.5"))}))
    found = [w for w in plan.warnings if "finalize refuses until then" in w]
    assert bool(found) == warned
    if warned:
        assert f"cp-1: etcd {etcd.split('-')[0]} must first be at 3.5.32" in found[0]
