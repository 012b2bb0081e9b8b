"""Replay a plan against an inventory, step by step, checking every rule the planner promises.

It is an independent model of what each step does to the cluster, so a plan can be checked without
trusting the planner's own reasoning: the property tests replay every plan they generate, and the
service replays each plan before storing it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from upgrader.domain.inventory import Inventory
from upgrader.domain.plans import Action, Plan, Step
from upgrader.domain.skew import kubeadm_kubelet_skew, kubelet_too_old
from upgrader.domain.validation import control_plane_version
from upgrader.domain.versions import Minor, Version


class ReplayError(AssertionError):
    """A plan step breaks a rule the planner promises to keep."""


@dataclass
class ClusterModel:
    apiserver: dict[str, Version]
    components: dict[str, Version]  # the slowest of controller-manager and scheduler, per CP node
    kubelet: dict[str, Version]
    kubeadm: dict[str, Version | None]
    cordoned: set[str]
    cluster_version: Version
    previous_line: Minor | None = None  # the minor before the last kubeadm apply
    snapshot_ready: bool = False
    emulated: Minor | None = None  # a two-step hop between step one and finalize
    soaked: bool = False
    counts: Counter[Minor] = field(default_factory=Counter)

    @classmethod
    def of(cls, inv: Inventory) -> ClusterModel:
        cps = [n for n in inv.control_planes if n.components]
        model = cls(
            apiserver={n.name: n.components.apiserver for n in cps if n.components},
            components={n.name: min(n.components.controller_manager, n.components.scheduler)
                        for n in cps if n.components},
            kubelet={n.name: n.kubelet for n in inv.nodes},
            kubeadm={n.name: n.kubeadm for n in inv.nodes},
            cordoned={n.name for n in inv.nodes if n.unschedulable},
            cluster_version=control_plane_version(inv),
        )
        return model

    def api_range(self) -> tuple[Minor, Minor]:
        lines = [v.line for v in self.apiserver.values()]
        return min(lines), max(lines)


def replay(inventory: Inventory, plan: Plan, *, skip: frozenset[Version] = frozenset()) -> ClusterModel:
    """Apply the plan's steps to a model of the cluster; raise ReplayError on the first broken rule.

    ``skip`` is the whole skip list the plan was made with (the plan lists only those in its range).
    """
    model = ClusterModel.of(inventory)
    banned = skip | frozenset(plan.skipped_versions)
    for step in plan.steps:
        _apply(model, step, banned)
    _check_final(model, plan)
    kept = {n.name for n in inventory.nodes if n.unschedulable} - model.cordoned
    if kept:
        raise ReplayError(f"nodes cordoned before the plan were uncordoned by it: {sorted(kept)}")
    return model


def _apply(m: ClusterModel, step: Step, banned: frozenset[Version]) -> None:
    v = step.version
    node = step.node
    if v is not None and v in banned and step.action is not Action.SNAPSHOT:
        raise ReplayError(f"step {step.n} uses skipped version {v}")
    if step.action is Action.SNAPSHOT:
        m.snapshot_ready = True
    elif step.action is Action.UPGRADE_KUBEADM:
        assert node and v
        m.kubeadm[node] = v
    elif step.action in (Action.KUBEADM_UPGRADE_APPLY, Action.EMULATED_UPGRADE_APPLY):
        if m.emulated is not None:
            raise ReplayError(f"step {step.n}: a new hop before the last two-step hop was finalized")
        _apply_control_plane(m, step)
        if step.action is Action.EMULATED_UPGRADE_APPLY:
            m.emulated, m.soaked = m.previous_line, False  # the minor it behaved as before
    elif step.action is Action.SOAK:
        if m.emulated is None:
            raise ReplayError(f"step {step.n}: a soak without the binaries emulating the old minor")
        m.soaked = True
    elif step.action is Action.FINALIZE_EMULATED_VERSION:
        if m.emulated is None or not m.soaked:
            raise ReplayError(f"step {step.n}: finalize without a soak of emulated binaries before it")
        m.emulated = None
    elif step.action in (Action.KUBEADM_UPGRADE_NODE, Action.EMULATED_UPGRADE_NODE):
        assert node and v
        if m.kubeadm.get(node) != v or v != m.cluster_version:
            raise ReplayError(f"step {step.n}: kubeadm upgrade node at {v} with kubeadm {m.kubeadm.get(node)} "
                              f"in a cluster at {m.cluster_version}")
        if node in m.apiserver:
            m.apiserver[node] = v
            m.components[node] = v
            _check_apiservers(m, step)
    elif step.action is Action.DRAIN:
        assert node
        m.cordoned.add(node)
    elif step.action is Action.UPGRADE_KUBELET:
        _upgrade_kubelet(m, step)
    elif step.action is Action.UNCORDON:
        assert node
        m.cordoned.discard(node)


def _apply_control_plane(m: ClusterModel, step: Step) -> None:
    node, v = step.node, step.version
    assert node and v
    if not m.snapshot_ready:
        raise ReplayError(f"step {step.n}: kubeadm upgrade apply without a snapshot first")
    if m.kubeadm.get(node) != v:
        raise ReplayError(f"step {step.n}: kubeadm upgrade apply {v} with kubeadm {m.kubeadm.get(node)}")
    if v.line.minus(m.cluster_version.line) > 1 or v < m.cluster_version:
        raise ReplayError(f"step {step.n}: kubeadm upgrade apply from {m.cluster_version} to {v}")
    floor = Minor(v.major, v.minor - kubeadm_kubelet_skew(v.line))
    old = [n for n, k in m.kubelet.items() if k.line < floor]
    if old:
        raise ReplayError(f"step {step.n}: kubeadm would refuse kubelets too old on {old}")
    m.apiserver[node] = v
    m.components[node] = v
    m.previous_line = m.cluster_version.line
    m.cluster_version = v
    m.snapshot_ready = False
    _check_apiservers(m, step)


def _upgrade_kubelet(m: ClusterModel, step: Step) -> None:
    node, v = step.node, step.version
    assert node and v
    if node not in m.cordoned:
        raise ReplayError(f"step {step.n}: kubelet upgraded on {node} without a drain")
    oldest, _ = m.api_range()
    if v.line > oldest:
        raise ReplayError(f"step {step.n}: kubelet {v} on {node} newer than the oldest apiserver {oldest}")
    if m.emulated is not None and v.line > m.emulated:
        raise ReplayError(f"step {step.n}: kubelet {v} on {node} newer than the emulated version {m.emulated}")
    m.kubelet[node] = v


def _check_apiservers(m: ClusterModel, step: Step) -> None:
    oldest, newest = m.api_range()
    if newest.minus(oldest) > 1:
        raise ReplayError(f"step {step.n}: apiservers {oldest} and {newest} more than one minor apart")
    stale = [n for n, k in m.kubelet.items() if kubelet_too_old(k.line, newest_apiserver=newest)]
    if stale:
        raise ReplayError(f"step {step.n}: kubelets on {stale} too old for apiserver {newest}")


def _check_final(m: ClusterModel, plan: Plan) -> None:
    if not plan.steps:
        return
    if m.emulated is not None:
        raise ReplayError(f"the plan ends with the control plane still emulating {m.emulated}")
    t = plan.target
    wrong = [f"{n} apiserver" for n, v in m.apiserver.items() if v != t]
    wrong += [f"{n} controller-manager/scheduler" for n, v in m.components.items() if v != t]
    wrong += [f"{n} kubelet" for n, v in m.kubelet.items() if v != t]
    if wrong:
        raise ReplayError(f"after the plan, nodes not at {t}: {sorted(set(wrong))}")
