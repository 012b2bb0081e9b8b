"""The planner: a pure function from (inventory, target, catalog, skip list, strategy) to a Plan.

Gather facts, decide in pure code: nothing here does I/O. The rules it follows (DOMAIN.md):
- the control plane moves one minor per hop, each hop at the newest catalog patch of that minor
  that is not skipped (the last hop at the exact target), every kubeadm apply preceded by a snapshot;
- a control plane a crashed run left half-upgraded is first brought level, without a second
  ``kubeadm upgrade apply`` for that version;
- workers (``skip-level``) are upgraded as rarely as the skew rules allow: only when the next hop
  would leave them too far behind, and then as far as the control plane has got (the latest, highest
  upgrade is never worse, so doing it per worker is the minimum number of upgrades).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from upgrader.domain.catalog import Catalog
from upgrader.domain.emulation import (
    EmulationRange,
    EtcdVersion,
    etcd_blockers,
    etcd_minor_move,
    points_of_no_return,
    why_not_two_step,
)
from upgrader.domain.inventory import Inventory
from upgrader.domain.plan_builder import Builder
from upgrader.domain.plans import Action, Hop, HopKind, Plan, Step, Strategy
from upgrader.domain.playbooks import DEFAULT_PLAYBOOKS, Playbooks
from upgrader.domain.validation import control_plane_version, validate_cluster_state
from upgrader.domain.versions import Minor, Version
from upgrader.errors import NoUpgradePathError

_ETCD_36 = Minor(1, 34)
DEFAULT_SOAK = 6 * 3600.0  # GKE's two-step soak starts at 6 hours


@dataclass(frozen=True, slots=True)
class TwoStep:
    """``--two-step``: per hop target, the emulation range its kube-apiserver's ``--help`` states (or
    why it could not be read); hops whose new binary can emulate the old minor soak before finalize."""

    ranges: Mapping[Version, EmulationRange | str]
    soak_seconds: float = DEFAULT_SOAK


def plan_upgrade(
    inventory: Inventory,
    target: Version | Minor,
    catalog: Catalog,
    *,
    skip: frozenset[Version] = frozenset(),
    strategy: Strategy = Strategy(),
    two_step: TwoStep | None = None,
    playbooks: Playbooks = DEFAULT_PLAYBOOKS,
) -> Plan:
    """Plan the path to ``target``; a plan with no steps means there is nothing to do. Each node's steps
    are its role's playbook expanded (``playbooks``: the shipped ones say what DEFAULT_PLAYBOOKS says)."""
    validate_cluster_state(inventory)
    current = control_plane_version(inventory)
    final = _resolve_target(target, current, catalog, skip)
    _refuse_unreachable_target(inventory, final, current, catalog, skip)
    hops = _hops(inventory, current, final, catalog, skip)
    notes: list[str] = []
    if two_step is not None:
        hops, notes = _two_step_hops(hops, current, two_step)
    steps = _steps(inventory, hops, current=current, final=final, strategy=strategy, playbooks=playbooks)
    if current in skip and _uses(steps, current):
        # The cluster runs a banned version and finishing this plan would install it on more nodes
        # (levelling a half-done hop, or workers catching up): move the control plane off it first.
        hops = _move_off(current, final, hops, catalog, skip)
        if two_step is not None:
            hops, notes = _two_step_hops(hops, current, two_step)
        steps = _steps(inventory, hops, current=current, final=final, strategy=strategy, playbooks=playbooks)
    _refuse_skipped(steps, skip)
    honoured = tuple(v for v in sorted(skip) if current <= v and v.line <= final.line)
    return Plan(
        cluster=inventory.cluster,
        source_version=current,
        target=final,
        source_fingerprint=inventory.fingerprint,
        strategy=strategy,
        skipped_versions=honoured,
        hops=tuple(hops),
        steps=tuple(steps),
        warnings=tuple([*_warnings(inventory, current, hops), *notes, *_etcd_prerequisite(inventory, current, hops)]),
        soak_seconds=two_step.soak_seconds if two_step is not None else None,
        points_of_no_return=points_of_no_return(hops, steps, source=current),
    )


def _two_step_hops(hops: list[Hop], current: Version, two_step: TwoStep) -> tuple[list[Hop], list[str]]:
    """Each minor hop whose new binary can emulate the old minor becomes two-step; the others stay
    plain, each with a warning saying why."""
    result: list[Hop] = []
    notes: list[str] = []
    line = current.line
    for hop in hops:
        if hop.kind is HopKind.UPGRADE and hop.minor != line:
            found = two_step.ranges.get(hop.version)
            if found is None:
                why: str | None = f"the emulation range of {hop.version} was not read"
            else:
                why = found if isinstance(found, str) else why_not_two_step(line, hop.minor, found)
            if why is None:
                held = etcd_minor_move(hop.minor) is not None
                hop = Hop(hop.minor, hop.version, hop.kind, emulate=line, hold_etcd=held)
            else:
                notes.append(f"the hop to {hop.version} is a plain upgrade, not two-step: {why}")
        result.append(hop)
        line = hop.minor
    return result, notes


def _resolve_target(target: Version | Minor, current: Version, catalog: Catalog, skip: frozenset[Version]) -> Version:
    if isinstance(target, Version):
        return target
    newest = catalog.newest(target, excluding=skip)
    if newest is None:
        if target == current.line:
            return current
        raise NoUpgradePathError(f"{target} has no release in the catalog that is not skipped")
    return max(newest, current) if target == current.line else newest


def _refuse_unreachable_target(
    inventory: Inventory, final: Version, current: Version, catalog: Catalog, skip: frozenset[Version]
) -> None:
    if final < current:
        raise NoUpgradePathError(
            f"target {final} is older than the control plane ({current}); "
            "upgrader does not downgrade: use `upgrader rollback` to return to a snapshot"
        )
    newer = sorted(n.name for n in inventory.nodes if n.kubelet > final)
    if newer:
        raise NoUpgradePathError(f"target {final} is older than the kubelet on {', '.join(newer)}")
    if final in skip and final != current:
        raise NoUpgradePathError(f"target {final} is in the skip list (see `upgrader cluster show`)")
    if final != current and final not in catalog:
        raise NoUpgradePathError(f"target {final} is not in the release catalog")


def _hops(
    inventory: Inventory, current: Version, final: Version, catalog: Catalog, skip: frozenset[Version]
) -> list[Hop]:
    hops: list[Hop] = []
    lagging = any(n.components and n.components.lowest < current for n in inventory.control_planes)
    kubelets_behind = any(n.kubelet < current for n in inventory.control_planes)
    if lagging or (kubelets_behind and final == current):
        hops.append(Hop(current.line, current, HopKind.LEVEL))
    if final.line == current.line:
        if final > current:
            hops.append(Hop(final.line, final, HopKind.UPGRADE))
        return hops
    if final.major != current.major:
        raise NoUpgradePathError(f"cannot plan across major versions ({current} to {final})")
    for minor in range(current.minor + 1, final.minor):
        line = Minor(current.major, minor)
        version = catalog.newest(line, excluding=skip)
        if version is None:
            why = "is missing from the release catalog" if not catalog.patches(line) else "has only skipped releases"
            raise NoUpgradePathError(f"no path to {final}: intermediate minor {line} {why}")
        hops.append(Hop(line, version, HopKind.UPGRADE))
    hops.append(Hop(final.line, final, HopKind.UPGRADE))
    return hops


def _steps(
    inventory: Inventory, hops: list[Hop], *, current: Version, final: Version, strategy: Strategy,
    playbooks: Playbooks,
) -> list[Step]:
    builder = Builder(inventory=inventory, strategy=strategy, playbooks=playbooks)
    if hops or any(n.kubelet < final for n in inventory.workers):
        builder.build(hops, current=current, final=final)
    return builder.steps


def _uses(steps: list[Step], version: Version) -> bool:
    return any(s.version == version for s in steps if s.action is not Action.SNAPSHOT)


def _move_off(
    current: Version, final: Version, hops: list[Hop], catalog: Catalog, skip: frozenset[Version]
) -> list[Hop]:
    """Replace the levelling at a skipped version with a patch hop to an allowed one of the same minor."""
    patch = final if final.line == current.line else catalog.newest(current.line, excluding=skip)
    if patch is None or patch <= current:
        raise NoUpgradePathError(
            f"the cluster runs {current}, which is skipped, and this plan would install it on more nodes; "
            f"the catalog has no later {current.line} patch to move the control plane to first"
        )
    later = [h for h in hops if h.kind is HopKind.UPGRADE and h.version != patch]
    return [Hop(patch.line, patch, HopKind.UPGRADE), *later]


def _refuse_skipped(steps: list[Step], skip: frozenset[Version]) -> None:
    """The last word on skip lists: no step may install a skipped version (a snapshot records one)."""
    used = [s for s in steps if s.version in skip and s.action is not Action.SNAPSHOT]
    if used:
        nodes = sorted({s.node for s in used if s.node})
        raise NoUpgradePathError(
            f"this plan would install {used[0].version}, which is skipped, on {_names(nodes)}; "
            f"the catalog has no later {used[0].version.line} patch to move the control plane to first"
            if used[0].version else "a step would use a skipped version"
        )


def _warnings(inventory: Inventory, current: Version, hops: list[Hop]) -> Iterable[str]:
    not_ready = [n.name for n in inventory.nodes if not n.ready]
    if not_ready:
        yield f"NotReady, so preflight will refuse while they stay so: {_names(not_ready)}"
    cordoned = [n.name for n in inventory.nodes if n.unschedulable]
    if cordoned:
        yield f"cordoned before this plan, so upgrader will not uncordon them: {_names(cordoned)}"
    old = [n.name for n in inventory.nodes if n.kubelet.line < Minor(1, 25)]
    if old:
        yield f"kubelets older than v1.25 may trail the apiserver by only 2 minors: {_names(old)}"
    if hops and current.line < _ETCD_36 <= hops[-1].minor:
        yield ("the hop to v1.34 moves etcd from 3.5 to 3.6: going back past it needs the etcd snapshot, "
               "and writes made after that snapshot are lost")


def _etcd_prerequisite(inventory: Inventory, current: Version, hops: list[Hop]) -> Iterable[str]:
    """The first hop that moves etcd's minor, when a member is below the patch that move needs (etcd's
    upgrade guides; kubeadm does not check it). Later hops: etcd's version by then is not known here."""
    line = current.line
    for hop in hops:
        moved = etcd_minor_move(hop.minor) if hop.kind is HopKind.UPGRADE and hop.minor != line else None
        line = hop.minor
        if moved is None:
            continue
        (a, b), (c, d) = moved
        members = {n.name: EtcdVersion.from_tag(n.components.etcd) for n in inventory.control_planes
                   if n.components is not None and n.components.etcd}
        at_old = {name: v for name, v in members.items() if v is not None and v.line == (a, b)}
        blockers = etcd_blockers(at_old, EtcdVersion(c, d, 0))
        if blockers:
            when = "finalize refuses until then" if hop.emulate else "kubeadm does not check it"
            yield f"the hop to {hop.version} moves etcd {a}.{b} -> {c}.{d} ({when}): " + "; ".join(blockers)
        return


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
