"""The planner expands the roles' playbooks: the shipped ones give exactly the plans of the built-in
procedures, and a copy's command and check steps land on every node of their role, where the copy put
them, with their placeholders replaced as whole arguments."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.unit.builders import V, cp, inventory, worker
from tests.unit.test_planner_properties import scenarios
from upgrader.domain.catalog import Catalog
from upgrader.domain.emulation import EmulationRange
from upgrader.domain.planning import TwoStep, plan_upgrade
from upgrader.domain.plans import Action, Plan, plan_from_dict
from upgrader.domain.playbooks import BUILT_IN, DEFAULT_PLAYBOOKS, Playbooks, Role, parse_playbook
from upgrader.domain.replay import replay
from upgrader.domain.versions import Minor, Version
from upgrader.errors import NoUpgradePathError
from upgrader.services.playbooks import load_playbooks

CATALOG = Catalog.of(Version(1, m, p) for m in range(28, 36) for p in range(0, 6))
CHECK = {"action": "check", "with": {"argv": ["probe", "{node}", "{version}", "{minor}"]}}


def _doc(role: Role, additions: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    """The role's built-in playbook with ``additions[(phase, index)]`` inserted before built-in ``index``."""
    phases: dict[str, list[dict[str, Any]]] = {}
    for phase, actions in BUILT_IN[role].items():
        steps: list[dict[str, Any]] = []
        for index, action in enumerate([*actions, None]):
            if (phase, index) in additions:
                steps.append({"name": f"added-{phase}-{index}", **additions[(phase, index)]})
            if action is not None:
                steps.append({"name": str(action), "action": str(action)})
        phases[phase] = steps
    return {"role": str(role), "phases": phases}


def _playbooks(**by_role: dict[tuple[str, int], dict[str, Any]]) -> Playbooks:
    roles = dict(DEFAULT_PLAYBOOKS.by_role)
    for name, additions in by_role.items():
        role = Role(name.replace("_", "-"))
        roles[role] = parse_playbook(_doc(role, additions), file=f"{role}.yaml", role=role)
    return Playbooks(roles)


def _without_custom(plan: Plan) -> list[tuple[Any, ...]]:
    return [(s.action, s.node, s.version, s.batch, s.hop, s.note) for s in plan.steps
            if s.action not in (Action.COMMAND, Action.CHECK)]


def test_a_check_before_each_workers_drain_and_after_each_control_plane_kubelet_runs_on_every_node_in_order():
    inv = inventory(cp("cp-1", "v1.30.2"), cp("cp-2", "v1.30.2"), worker("w-1", "v1.30.2"), worker("w-2", "v1.30.2"))
    books = _playbooks(worker={("node", 2): CHECK}, first_control_plane={("kubelet", 2): CHECK},
                       control_plane={("kubelet", 2): CHECK})
    plan = plan_upgrade(inv, V("v1.31.5"), CATALOG, playbooks=books)
    checks = [s for s in plan.steps if s.action is Action.CHECK]
    assert [s.node for s in checks] == ["cp-1", "cp-2", "w-1", "w-2"]
    for check in checks:
        before, after = plan.steps[check.n - 2], plan.steps[check.n]
        if check.node.startswith("w-"):
            assert (before.action, after.action, after.node) == (Action.KUBEADM_UPGRADE_NODE, Action.DRAIN, check.node)
        else:
            assert (before.action, before.node, after.action) == (Action.UPGRADE_KUBELET, check.node, Action.UNCORDON)
        assert check.params["with"] == {"node": check.node, "argv": ["probe", check.node, "v1.31.5", "v1.31"],
                                        "timeout": 30.0, "retries": 3, "interval": 5.0}
        assert check.params["name"].startswith("added-") and check.version == V("v1.31.5")
    assert _without_custom(plan) == _without_custom(plan_upgrade(inv, V("v1.31.5"), CATALOG))
    replay(inv, plan)


def test_a_batch_check_runs_once_per_batch_after_its_gate_on_no_node():
    inv = inventory(cp("cp-1", "v1.30.2"), worker("w-1", "v1.30.2"), worker("w-2", "v1.30.2"), worker("w-3", "v1.30.2"))
    books = _playbooks(worker={("batch", 1): {"action": "check", "with": {"http": "/readyz", "retries": 10}}})
    plan = plan_upgrade(inv, V("v1.31.5"), CATALOG, playbooks=books)
    checks = [s for s in plan.steps if s.action is Action.CHECK]
    assert [(s.node, s.batch) for s in checks] == [(None, 1), (None, 2), (None, 3)]
    assert all(plan.steps[s.n - 2].action is Action.HEALTH_GATE for s in checks)
    assert checks[0].params["with"] == {"http": "/readyz", "timeout": 30.0, "retries": 10, "interval": 5.0}


def test_two_step_hops_run_the_control_plane_phase_hooks_around_the_emulated_actions():
    inv = inventory(cp("cp-1", "v1.33.2"), cp("cp-2", "v1.33.2"))
    hook = {"action": "command", "with": {"argv": ["/opt/hooks/after-kubeadm", "{node}"]}}
    books = _playbooks(first_control_plane={("control-plane", 3): hook}, control_plane={("control-plane", 2): hook})
    two = TwoStep({V("v1.34.5"): EmulationRange(Minor(1, 33), Minor(1, 34))})
    plan = plan_upgrade(inv, V("v1.34.5"), CATALOG, two_step=two, playbooks=books)
    commands = [s for s in plan.steps if s.action is Action.COMMAND]
    assert [(plan.steps[s.n - 2].action, s.node) for s in commands] == [
        (Action.EMULATED_UPGRADE_APPLY, "cp-1"), (Action.EMULATED_UPGRADE_NODE, "cp-2")]
    assert commands[0].params["with"]["argv"] == ["/opt/hooks/after-kubeadm", "cp-1"]
    assert _without_custom(plan) == _without_custom(plan_upgrade(inv, V("v1.34.5"), CATALOG, two_step=two))
    replay(inv, plan)


def test_levelling_a_half_done_hop_runs_the_control_plane_roles_steps_on_each_node_behind():
    inv = inventory(cp("cp-1", "v1.31.2"), cp("cp-2", "v1.30.4"))
    books = _playbooks(control_plane={("control-plane", 0): {"action": "command", "with": {"argv": ["pre", "{node}"]}}},
                       first_control_plane={("control-plane", 0): {"action": "command", "with": {"argv": ["never"]}}})
    plan = plan_upgrade(inv, V("v1.31.2"), CATALOG, playbooks=books)
    assert [(s.node, s.params["with"]["argv"]) for s in plan.steps if s.action is Action.COMMAND] == [
        ("cp-2", ["pre", "cp-2"])]
    replay(inv, plan)


def test_custom_steps_and_their_params_survive_the_plan_document_and_built_ins_have_none():
    inv = inventory(cp("cp-1", "v1.30.2"), worker("w-1", "v1.30.2"))
    books = _playbooks(worker={("node", 2): {**CHECK, "when": {"manager": "dnf"}}})
    plan = plan_upgrade(inv, V("v1.31.5"), CATALOG, playbooks=books)
    doc = plan.to_dict()
    assert plan_from_dict(doc) == plan
    custom = [s for s in doc["steps"] if s["action"] == "check"]
    assert custom[0]["params"] == {"name": "added-node-2", "playbook": "worker.yaml", "when": {"manager": "dnf"},
                                   "with": {"node": "w-1", "argv": ["probe", "w-1", "v1.31.5", "v1.31"],
                                            "timeout": 30.0, "retries": 3, "interval": 5.0}}
    assert custom[0]["reversibility"] == "none"
    assert custom[0]["note"] == "added-node-2: probe w-1 v1.31.5 v1.31 (on dnf nodes)"
    assert all("params" not in s for s in doc["steps"] if s["action"] != "check")


SHIPPED = load_playbooks(None)
EVERYWHERE = _playbooks(**{role.name.lower(): {(phase, i): {"action": "check", "with": {"http": "/livez"}}
                                              for phase, actions in BUILT_IN[role].items()
                                              for i in range(len(actions) + 1)} for role in Role})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(scenarios())
def test_the_shipped_files_plan_exactly_the_built_in_procedures_and_added_steps_change_no_built_in_step(scenario):
    inv, target, catalog, skip, strategy = scenario
    try:
        default = plan_upgrade(inv, target, catalog, skip=skip, strategy=strategy)
    except NoUpgradePathError:
        return
    assert plan_upgrade(inv, target, catalog, skip=skip, strategy=strategy, playbooks=SHIPPED) == default
    custom = plan_upgrade(inv, target, catalog, skip=skip, strategy=strategy, playbooks=EVERYWHERE)
    assert _without_custom(custom) == _without_custom(default)
    assert [s.n for s in custom.steps] == list(range(1, len(custom.steps) + 1))
    assert dataclasses.replace(custom, steps=default.steps, points_of_no_return=default.points_of_no_return) == default
    replay(inv, custom, skip=skip)
