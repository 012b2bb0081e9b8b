"""The plan of a soak rollback: a two-step hop taken back during its soak (KEP-4330; DOMAIN.md "Minor-version
rollback").

During the soak the new kube-apiserver, kube-controller-manager and kube-scheduler run emulating the old
minor, etcd was held at its minor and the kubelets and workers stayed at the old version: nothing the
cluster stored needs the new minor, so going back is a binary and manifest swap with no etcd restore and
no lost writes. The steps: kubeadm-config's ClusterConfiguration back at the old ``kubernetesVersion``
without ``--emulated-version`` (so no later kubeadm run renders the flag again); per control-plane node,
the old minor's apiserver, controller-manager and scheduler manifests back (etcd's is left as it is: etcd
was held), kubeadm and kubectl (and the kubelet, had it moved) downgraded to the snapshot's builds, the
kubelet restarted; then ``/readyz``, etcd and ``/version`` at the old version, and the verification. Workers
are not touched. Pure: the service hands in the snapshot taken before the hop (its captured manifests and
package builds) as a :class:`RollbackTarget`.
"""

from __future__ import annotations

from upgrader.domain.inventory import Inventory
from upgrader.domain.plans import REVERSIBILITY, Action, Plan, Step, Strategy
from upgrader.domain.rollback import RollbackKind, RollbackPlan, RollbackTarget
from upgrader.domain.versions import Version
from upgrader.errors import IntegrityError

WHY_NOTHING_LOST = ("a soak rollback restores no etcd snapshot: the binaries emulated the old minor and etcd "
                    "was held at its minor, so every object written since the upgrade stays as it is")


def plan_soak_rollback(inventory: Inventory, target: RollbackTarget, *, token: str, rollback_of: int | None,
                       fingerprint: str = "") -> RollbackPlan:
    """The steps that swap a soaking two-step hop back to ``target.version``; IntegrityError (exit 8) when the
    snapshot cannot give back what the swap needs (another cluster, a newer version, no manifests or builds)."""
    _refuse(inventory, target)
    cps = sorted(n.name for n in inventory.control_planes)
    steps: list[Step] = []

    def add(action: Action, node: str | None, version: Version, note: str = "") -> None:
        steps.append(Step(n=len(steps) + 1, action=action, node=node, version=version, batch=None,
                          reversibility=REVERSIBILITY[action], note=note))

    add(Action.RESTORE_KUBEADM_CONFIG, None, target.version,
        note=f"kubernetesVersion {target.version}, no --emulated-version in extraArgs")
    for node in cps:
        add(Action.SWAP_MANIFESTS, node, target.version, note="etcd.yaml kept: etcd was held during the soak")
        add(Action.DOWNGRADE_PACKAGES, node, target.version)
        add(Action.START_CONTROL_PLANE, node, target.version)
    add(Action.START_CONTROL_PLANE, None, target.version, note="wait for /readyz, etcd and /version")
    add(Action.VERIFY_ROLLBACK, None, target.version, note="no etcd restore: the etcd members are unchanged")
    current = {n.name: {"kubelet": str(n.kubelet),
                        **({"apiserver": str(n.components.apiserver)} if n.components else {})}
               for n in inventory.nodes}
    source = max((n.components.apiserver for n in inventory.control_planes if n.components),
                 default=target.version)
    plan = Plan(cluster=inventory.cluster, source_version=source, target=target.version,
                source_fingerprint=fingerprint, strategy=Strategy(), skipped_versions=(), hops=(), steps=tuple(steps))
    return RollbackPlan(plan=plan, target=target, token=token, rollback_of=rollback_of, current=current,
                        workers={}, kind=RollbackKind.SOAK)


def touched(plan: RollbackPlan) -> list[str]:
    """The nodes a rollback's steps act on."""
    return sorted({s.node for s in plan.plan.steps if s.node})


def _refuse(inventory: Inventory, target: RollbackTarget) -> None:
    sid = f"snapshot {target.snapshot_id}"
    if target.cluster != inventory.cluster:
        raise IntegrityError(f"{sid} is a snapshot of cluster {target.cluster}, not of {inventory.cluster}: refused")
    problems = []
    for node in sorted(n.name for n in inventory.control_planes):
        builds = target.packages.get(node) or {}
        missing = [p for p in ("kubeadm", "kubelet", "kubectl") if not builds.get(p)]
        if missing:
            problems.append(f"{node}: no {', '.join(missing)} package version recorded")
        kept = [p for p in target.manifests.get(node, ()) if not p.endswith("/etcd.yaml")]
        if not kept:
            problems.append(f"{node}: no control-plane manifest captured")
    newer = [f"{n.name} kubelet {n.kubelet}" for n in inventory.nodes if target.version.line < n.kubelet.line]
    if newer:
        problems.append(f"kubelets newer than {target.version} ({', '.join(newer)}): not a soak any more")
    if problems:
        raise IntegrityError(f"{sid} cannot be swapped back on cluster {inventory.cluster}: " + "; ".join(problems))
