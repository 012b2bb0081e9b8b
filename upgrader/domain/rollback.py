"""The plan of a minor-version rollback to a snapshot (DOMAIN.md "Minor-version rollback").

A rollback is a plan like any other (its steps run through the same executor, ``resume`` finishes it),
in the order the only safe full rollback of a kubeadm cluster takes: stop the control plane on every
control-plane node (static pod manifests moved aside, kept under the run), move each etcd data dir
aside (never deleted), restore the snapshot for every member (its own name and peer URL, one new
cluster token), reinstate the snapshot's manifests and kubelet config, downgrade kubeadm, kubelet and
kubectl to the snapshot's builds, restart the kubelets and wait for quorum and ``/readyz``; then every
worker whose kubelet is newer than the restored API server is drained, downgraded and uncordoned;
last, the cluster is verified at the snapshot's versions.

Pure: the service reads the snapshot's manifests (member names, peer URLs, data dirs) and hands
them in as values. A "soak" rollback (two-step upgrade, no etcd restore) is a different ``kind`` of
the same document, planned by domain/rollback_soak.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from upgrader.domain.inventory import Inventory
from upgrader.domain.plans import REVERSIBILITY, Action, Plan, Step, Strategy
from upgrader.domain.versions import Version
from upgrader.errors import IntegrityError, InvalidVersionError

KIND = "rollback"  # a plan document's "kind" when it is a rollback


class RollbackKind(StrEnum):
    ETCD_RESTORE = "etcd-restore"  # back to a snapshot: etcd restored, writes since then lost
    SOAK = "soak"  # a two-step soak: binaries and manifests swapped back, no etcd restore (domain/rollback_soak.py)


@dataclass(frozen=True, slots=True)
class EtcdMemberSpec:
    """One etcd member as the snapshot's etcd.yaml of its node names it."""

    node: str
    name: str
    peer_url: str
    data_dir: str  # on the node (the manifest's hostPath for --data-dir)

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "name": self.name, "peer_url": self.peer_url, "data_dir": self.data_dir}


@dataclass(frozen=True, slots=True)
class RollbackTarget:
    """What the snapshot recorded, as values: the versions to bring back and etcd's members."""

    snapshot_id: int
    cluster: str
    version: Version  # the control plane's version at snapshot time
    kubelets: Mapping[str, str]  # node -> kubelet version at snapshot time
    packages: Mapping[str, Mapping[str, str]]  # control-plane node -> package -> build (1.31.4-1.1)
    members: tuple[EtcdMemberSpec, ...]
    etcd_image: str | None  # from the snapshot's etcd.yaml
    etcd_version: str | None  # the snapshot's etcd (member version, else the image tag)
    manifests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # node -> captured manifest paths


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    plan: Plan
    target: RollbackTarget
    token: str
    rollback_of: int | None
    current: Mapping[str, Any]  # node -> {"kubelet": ..., "apiserver": ...}
    workers: Mapping[str, str]  # worker -> kubelet version it is taken back to
    kind: RollbackKind = RollbackKind.ETCD_RESTORE

    def to_dict(self) -> dict[str, Any]:
        """The plan document: the executor's plan plus what the rollback's steps need."""
        t = self.target
        return self.plan.to_dict() | {
            "kind": KIND,
            "rollback": {
                "kind": str(self.kind),
                "snapshot_id": t.snapshot_id,
                "rollback_of": self.rollback_of,
                "from": dict(self.current),
                "to": {"version": str(t.version), "kubelets": dict(t.kubelets),
                       "packages": {n: dict(p) for n, p in t.packages.items()},
                       "etcd_image": t.etcd_image, "etcd_version": t.etcd_version},
                "token": self.token,
                "members": [m.to_dict() for m in t.members],
                "initial_cluster": initial_cluster(t.members),
                "workers": dict(self.workers),
            },
        }


def initial_cluster(members: Sequence[EtcdMemberSpec]) -> str:
    return ",".join(f"{m.name}={m.peer_url}" for m in sorted(members, key=lambda m: m.name))


def is_rollback(document: Mapping[str, Any]) -> bool:
    return document.get("kind") == KIND


def plan_rollback(inventory: Inventory, target: RollbackTarget, *, token: str, rollback_of: int | None = None,
                  fingerprint: str = "", strategy: Strategy | None = None) -> RollbackPlan:
    """The steps that take ``inventory`` back to ``target``; IntegrityError (exit 8) when the snapshot
    belongs to another cluster or its versions cannot be reinstated on these nodes."""
    _refuse(inventory, target)
    strategy = strategy or Strategy()
    cps = _control_planes(inventory)
    steps: list[Step] = []

    def add(action: Action, node: str | None, version: Version, batch: int | None = None, note: str = "") -> None:
        steps.append(Step(n=len(steps) + 1, action=action, node=node, version=version, batch=batch,
                          reversibility=REVERSIBILITY[action], note=note))

    for action in (Action.STOP_CONTROL_PLANE, Action.MOVE_ETCD_DATA, Action.RESTORE_ETCD,
                   Action.REINSTATE_MANIFESTS):
        for node in cps:
            add(action, node, target.version)
    for node in cps:
        add(Action.DOWNGRADE_PACKAGES, node, _package_version(target, node))
    for node in cps:
        add(Action.START_CONTROL_PLANE, node, target.version)
    add(Action.START_CONTROL_PLANE, None, target.version, note="wait for etcd quorum and /readyz")
    workers = workers_to_downgrade(inventory, target)
    names = sorted(workers)
    size = max(1, strategy.max_unavailable)
    for b, start in enumerate(range(0, len(names), size), start=1):
        for node in names[start:start + size]:
            version = Version.parse(workers[node])
            add(Action.DRAIN, node, version, b)
            add(Action.DOWNGRADE_KUBELET, node, version, b)
            add(Action.UNCORDON, node, version, b)
    add(Action.VERIFY_ROLLBACK, None, target.version)
    current = {n.name: {"kubelet": str(n.kubelet),
                        **({"apiserver": str(n.components.apiserver)} if n.components else {})}
               for n in inventory.nodes}
    source = max((n.components.apiserver for n in inventory.control_planes if n.components),
                 default=target.version)
    plan = Plan(cluster=inventory.cluster, source_version=source, target=target.version,
                source_fingerprint=fingerprint, strategy=strategy, skipped_versions=(), hops=(), steps=tuple(steps))
    return RollbackPlan(plan=plan, target=target, token=token, rollback_of=rollback_of, current=current,
                        workers=workers)


def workers_to_downgrade(inventory: Inventory, target: RollbackTarget) -> dict[str, str]:
    """Each worker whose kubelet is newer than the restored API server, and the version it goes back to:
    its kubelet at snapshot time when that is not newer than the API server, else the API server's."""
    result: dict[str, str] = {}
    for node in inventory.workers:
        if not target.version < node.kubelet:
            continue
        before = _parse(target.kubelets.get(node.name))
        back = before if before is not None and not target.version < before else target.version
        result[node.name] = str(back)
    return result


def _control_planes(inventory: Inventory) -> list[str]:
    return sorted(n.name for n in inventory.control_planes)


def _package_version(target: RollbackTarget, node: str) -> Version:
    build = target.packages[node].get("kubeadm") or target.packages[node].get("kubelet") or ""
    found = _parse("v" + build.split("-", 1)[0])
    return found if found is not None else target.version


def _parse(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version.parse(text)
    except InvalidVersionError:
        return None


def _refuse(inventory: Inventory, target: RollbackTarget) -> None:
    sid = f"snapshot {target.snapshot_id}"
    if target.cluster != inventory.cluster:
        raise IntegrityError(f"{sid} is a snapshot of cluster {target.cluster}, not of {inventory.cluster}: refused")
    current = max((n.components.apiserver for n in inventory.control_planes if n.components), default=None)
    if current is not None and current < target.version:
        raise IntegrityError(f"{sid} is at {target.version}, newer than the cluster ({current}): not a rollback, "
                             "refused")
    cps = set(_control_planes(inventory))
    members = {m.node for m in target.members}
    problems = []
    if cps - members:
        problems.append(f"no etcd member recorded for control-plane node(s) {', '.join(sorted(cps - members))} "
                        "(added since the snapshot?)")
    if members - cps:
        problems.append(f"etcd member node(s) {', '.join(sorted(members - cps))} are no longer control-plane "
                        "nodes of the cluster")
    for node in sorted(cps & members):
        builds = target.packages.get(node) or {}
        missing = [p for p in ("kubeadm", "kubelet", "kubectl") if not builds.get(p)]
        if missing:
            problems.append(f"{node}: no {', '.join(missing)} package version recorded")
        if node in target.manifests and not any(p.endswith("/etcd.yaml") for p in target.manifests[node]):
            problems.append(f"{node}: no etcd.yaml manifest captured")
    if problems:
        raise IntegrityError(f"{sid} cannot be reinstated on cluster {inventory.cluster}: " + "; ".join(problems))
