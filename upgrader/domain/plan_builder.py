"""The planner's step builder: each hop's steps, per node, as the roles' playbooks say.

The planner (domain/planning.py) decides the hops and which workers move when; this builder turns
them into steps by expanding each role's playbook phases (domain/playbooks.py) for every node, with
the notes and versions only the planner knows (the snapshot's known-good version, a two-step hop's
emulated kubeadm actions, a node cordoned before the run keeping its cordon).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from upgrader.domain.inventory import Inventory, Node
from upgrader.domain.plans import REVERSIBILITY, Action, Hop, HopKind, Step, Strategy, WorkerStrategy
from upgrader.domain.playbooks import DEFAULT_PLAYBOOKS, Playbooks, PlaybookStep, Role, substitute
from upgrader.domain.skew import kubelet_may_stay
from upgrader.domain.versions import Minor, Version


@dataclass
class Builder:
    """Accumulates steps while tracking where each worker's kubelet stands."""

    inventory: Inventory
    strategy: Strategy
    playbooks: Playbooks = DEFAULT_PLAYBOOKS
    steps: list[Step] = field(default_factory=list)
    batch: int = 0

    def __post_init__(self) -> None:
        self.workers = {n.name: n.kubelet for n in self.inventory.workers}
        self.cordoned = {n.name for n in self.inventory.nodes if n.unschedulable}
        self.cp_kubelets = {n.name: n.kubelet for n in self.inventory.control_planes}

    def build(self, hops: list[Hop], *, current: Version, final: Version) -> None:
        self.add(Action.PREFLIGHT, None, None)
        cp_now = current
        for index, hop in enumerate(hops):
            if hop.kind is HopKind.UPGRADE:
                before = index - 1 if index else None
                stuck = sorted(n for n, v in self.cp_kubelets.items() if not kubelet_may_stay(v.line, hop=hop.minor))
                for name in stuck:  # a control-plane kubelet left far behind would block kubeadm too
                    self.kubelet(name, cp_now, hop=before, batch=None)
                forced = sorted(w for w, v in self.workers.items() if not kubelet_may_stay(v.line, hop=hop.minor))
                if forced:
                    self.upgrade_workers(forced, cp_now, hop=before)  # as far as the control plane has got
                self.control_plane_hop(hop, index, snapshot_of=cp_now)
            else:
                self.level_hop(hop, index, last=index == len(hops) - 1)
            cp_now = hop.version
            if self.strategy.workers is WorkerStrategy.EVERY_MINOR and hop.kind is HopKind.UPGRADE:
                behind = sorted(w for w, v in self.workers.items() if v < hop.version)
                self.upgrade_workers(behind, hop.version, hop=index)
        behind = sorted(w for w, v in self.workers.items() if v < final)
        self.upgrade_workers(behind, final, hop=len(hops) - 1 if hops else None)
        self.add(Action.POSTFLIGHT, None, final)

    def add(
        self, action: Action, node: str | None, version: Version | None, *,
        hop: int | None = None, batch: int | None = None, note: str = "", params: Mapping[str, Any] | None = None,
    ) -> None:
        self.steps.append(
            Step(n=len(self.steps) + 1, action=action, node=node, version=version, batch=batch,
                 reversibility=REVERSIBILITY[action], hop=hop, note=note, params=params or {})
        )

    def expand(
        self, role: Role, phase: str, node: str | None, version: Version, *, hop: int | None, batch: int | None,
        made: Mapping[Action, tuple[Action, Version | None, str] | None],
    ) -> None:
        """The steps of ``role``'s ``phase`` on ``node``: each built-in step as ``made`` says (the action to
        record, its version and note; None leaves it out), each custom step with its placeholders replaced."""
        for step in self.playbooks.phase(role, phase):
            if step.custom:
                params: dict[str, Any] = {"name": step.name, "with": substitute(step.args, node=node, version=version),
                                          "playbook": self.playbooks.by_role[role].source}
                if step.manager is not None:
                    params["when"] = {"manager": step.manager}
                self.add(step.action, node, version, hop=hop, batch=batch, note=_custom_note(step, params["with"]),
                         params=params)
                continue
            what = made[step.action]
            if what is not None:
                action, at, note = what
                self.add(action, node, at, hop=hop, batch=batch, note=note)

    def control_plane_hop(self, hop: Hop, index: int, *, snapshot_of: Version) -> None:
        if hop.emulate is not None:
            self.two_step_hop(hop, index, snapshot_of=snapshot_of)
            return
        first, *others = _control_plane_order(self.inventory)
        v = hop.version
        self.expand(Role.FIRST_CONTROL_PLANE, "control-plane", first.name, v, hop=index, batch=None, made={
            Action.SNAPSHOT: (Action.SNAPSHOT, snapshot_of,
                              f"known-good point at {snapshot_of} before kubeadm rewrites the control plane"),
            Action.UPGRADE_KUBEADM: (Action.UPGRADE_KUBEADM, v, ""),
            Action.KUBEADM_UPGRADE_APPLY: (Action.KUBEADM_UPGRADE_APPLY, v, ""),
            Action.HEALTH_GATE: (Action.HEALTH_GATE, v, "apiserver ready at the new version")})
        for node in others:
            self.expand(Role.CONTROL_PLANE, "control-plane", node.name, v, hop=index, batch=None, made={
                Action.UPGRADE_KUBEADM: (Action.UPGRADE_KUBEADM, v, ""),
                Action.KUBEADM_UPGRADE_NODE: (Action.KUBEADM_UPGRADE_NODE, v, ""),
                Action.HEALTH_GATE: (Action.HEALTH_GATE, v, "control plane ready on node")})
        for node in (first, *others):
            self.kubelet(node.name, v, hop=index, batch=None)

    def two_step_hop(self, hop: Hop, index: int, *, snapshot_of: Version) -> None:
        """Step one (new binaries emulating the old minor; etcd held when the hop moves its minor), a
        soak, then finalize. Kubelets may not be newer than the emulated version: they move after it.
        The playbooks' control-plane phases run with the emulated kubeadm actions in place of the plain ones."""
        first, *others = _control_plane_order(self.inventory)
        etcd = "; etcd stays at its minor until finalize" if hop.hold_etcd else ""
        v = hop.version
        self.expand(Role.FIRST_CONTROL_PLANE, "control-plane", first.name, v, hop=index, batch=None, made={
            Action.SNAPSHOT: (Action.SNAPSHOT, snapshot_of,
                              f"known-good point at {snapshot_of} before kubeadm rewrites the control plane"),
            Action.UPGRADE_KUBEADM: (Action.UPGRADE_KUBEADM, v, ""),
            Action.KUBEADM_UPGRADE_APPLY: (
                Action.EMULATED_UPGRADE_APPLY, v,
                f"--emulated-version={_flag(hop.emulate)} in kubeadm-config and the manifests{etcd}"),
            Action.HEALTH_GATE: (Action.HEALTH_GATE, v, "apiserver ready at the new version")})
        for node in others:
            self.expand(Role.CONTROL_PLANE, "control-plane", node.name, v, hop=index, batch=None, made={
                Action.UPGRADE_KUBEADM: (Action.UPGRADE_KUBEADM, v, ""),
                Action.KUBEADM_UPGRADE_NODE: (Action.EMULATED_UPGRADE_NODE, v,
                                              f"--emulated-version={_flag(hop.emulate)}{etcd}"),
                Action.HEALTH_GATE: (Action.HEALTH_GATE, v, "control plane ready on node")})
        self.add(Action.SOAK, None, v, hop=index,
                 note="the run pauses; `upgrader finalize RUN` ends the soak, `upgrader rollback` swaps back")
        self.add(Action.FINALIZE_EMULATED_VERSION, first.name, v, hop=index,
                 note="point of no return: emulation raised to " + str(hop.minor)
                 + (", etcd upgraded" if hop.hold_etcd else ""))
        for node in (first, *others):
            self.add(Action.HEALTH_GATE, node.name, v, hop=index, note="control plane ready after finalize")
        for node in (first, *others):
            self.kubelet(node.name, v, hop=index, batch=None)

    def level_hop(self, hop: Hop, index: int, *, last: bool) -> None:
        """Finish the hop to ``hop.version`` that a crashed run left half done.

        kubeadm upgrade node also moves the node's etcd member, so a snapshot comes first. Kubelets
        are levelled only when no later hop would take them further (a drain per node is costly).
        Every lagging node, the first one too, goes through the control-plane role's phase (`kubeadm
        upgrade node`: the hop's `kubeadm upgrade apply` already happened).
        """
        first = _control_plane_order(self.inventory)[0]
        v = hop.version
        self.add(Action.SNAPSHOT, first.name, v, hop=index,
                 note="before finishing the half-done hop (not a known-good point: the cluster is mid-upgrade)")
        for node in _control_plane_order(self.inventory):
            assert node.components is not None
            if node.components.lowest < v:
                self.expand(Role.CONTROL_PLANE, "control-plane", node.name, v, hop=index, batch=None, made={
                    Action.UPGRADE_KUBEADM: (Action.UPGRADE_KUBEADM, v, ""),
                    Action.KUBEADM_UPGRADE_NODE: (Action.KUBEADM_UPGRADE_NODE, v,
                                                  "level with the control-plane nodes already upgraded"),
                    Action.HEALTH_GATE: (Action.HEALTH_GATE, v, "control plane ready on node")})
        for node in _control_plane_order(self.inventory):
            if last and self.cp_kubelets[node.name] < v:
                self.kubelet(node.name, v, hop=index, batch=None)

    def _role(self, node: str) -> Role:
        first = _control_plane_order(self.inventory)[0]
        return Role.FIRST_CONTROL_PLANE if node == first.name else Role.CONTROL_PLANE

    def _kubelet_made(self, node: str, version: Version) -> dict[Action, tuple[Action, Version | None, str] | None]:
        already = node in self.cordoned
        note = "cordoned before upgrader started: it stays cordoned" if already else ""
        return {Action.DRAIN: (Action.DRAIN, None, note), Action.UPGRADE_KUBELET: (Action.UPGRADE_KUBELET, version, ""),
                Action.UNCORDON: None if already else (Action.UNCORDON, None, "")}

    def kubelet(self, node: str, version: Version, *, hop: int | None, batch: int | None) -> None:
        """A control-plane node's kubelet: its role's kubelet phase."""
        self.expand(self._role(node), "kubelet", node, version, hop=hop, batch=batch,
                    made=self._kubelet_made(node, version))
        if node in self.cp_kubelets:
            self.cp_kubelets[node] = version

    def upgrade_workers(self, names: Iterable[str], version: Version, *, hop: int | None) -> None:
        ordered = list(names)
        size = self.strategy.max_unavailable
        for start in range(0, len(ordered), size):
            self.batch += 1
            for name in ordered[start : start + size]:
                self.expand(Role.WORKER, "node", name, version, hop=hop, batch=self.batch, made={
                    Action.UPGRADE_KUBEADM: (Action.UPGRADE_KUBEADM, version, ""),
                    Action.KUBEADM_UPGRADE_NODE: (Action.KUBEADM_UPGRADE_NODE, version, ""),
                    **self._kubelet_made(name, version)})
                self.workers[name] = version
            self.expand(Role.WORKER, "batch", None, version, hop=hop, batch=self.batch, made={
                Action.HEALTH_GATE: (Action.HEALTH_GATE, version, "batch nodes Ready")})


def _flag(minor: Minor | None) -> str:
    assert minor is not None
    return f"{minor.major}.{minor.minor}"


def _control_plane_order(inventory: Inventory) -> list[Node]:
    """The node that runs ``kubeadm upgrade apply`` first: the one furthest along, then by name."""
    nodes = sorted(inventory.control_planes, key=lambda n: n.name)
    return sorted(nodes, key=lambda n: n.components.apiserver if n.components else n.kubelet, reverse=True)


def _custom_note(step: PlaybookStep, args: Mapping[str, Any]) -> str:
    what = f"GET {args['http']}" if "http" in args else " ".join(args["argv"])
    return f"{step.name}: {what}" + (f" (on {step.manager} nodes)" if step.manager else "")

