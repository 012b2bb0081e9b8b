"""What a plan is: an ordered list of steps in a small action vocabulary (ARCHITECTURE.md "Plan shape")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from upgrader.domain.versions import Minor, Version


class Action(StrEnum):
    PREFLIGHT = "preflight"
    SNAPSHOT = "snapshot"
    UPGRADE_KUBEADM = "upgrade-kubeadm"
    KUBEADM_UPGRADE_APPLY = "kubeadm-upgrade-apply"
    KUBEADM_UPGRADE_NODE = "kubeadm-upgrade-node"
    DRAIN = "drain"
    UPGRADE_KUBELET = "upgrade-kubelet"
    UNCORDON = "uncordon"
    HEALTH_GATE = "health-gate"
    FINALIZE_EMULATED_VERSION = "finalize-emulated-version"
    POSTFLIGHT = "postflight"
    # a rollback's own steps (domain/rollback.py); it also uses drain and uncordon
    STOP_CONTROL_PLANE = "stop-control-plane"
    MOVE_ETCD_DATA = "move-etcd-data"
    RESTORE_ETCD = "restore-etcd"
    REINSTATE_MANIFESTS = "reinstate-manifests"
    DOWNGRADE_PACKAGES = "downgrade-packages"
    START_CONTROL_PLANE = "start-control-plane"
    DOWNGRADE_KUBELET = "downgrade-kubelet"
    VERIFY_ROLLBACK = "verify-rollback"
    # two-step hops (KEP-4330): the new binaries emulating the old minor, a soak, then finalize
    EMULATED_UPGRADE_APPLY = "emulated-upgrade-apply"
    EMULATED_UPGRADE_NODE = "emulated-upgrade-node"
    SOAK = "soak"
    # a soak rollback's own steps (domain/rollback_soak.py): binaries and manifests back, no etcd restore
    RESTORE_KUBEADM_CONFIG = "restore-kubeadm-config"
    SWAP_MANIFESTS = "swap-manifests"
    # a certificate renewal's own steps (domain/certificates.py); it also uses health-gate
    RENEW_CERTIFICATES = "renew-certificates"
    RESTART_CONTROL_PLANE = "restart-control-plane"
    # playbook steps (domain/playbooks.py, engine/custom_steps.py): an argv run on a node, and a check
    # (an argv or an HTTP GET on the API) that must succeed; runbooks use them too
    COMMAND = "command"
    CHECK = "check"
    # runbook steps: generic (domain/runbook_actions.py, engine/runbook_steps.py)
    OBSERVE_CLUSTER = "observe-cluster"
    WAIT_HEALTHY = "wait-healthy"
    ROLLBACK_UPGRADE = "rollback-upgrade"
    PREVIEW_RESTORE = "preview-restore"
    RESTORE_SNAPSHOT = "restore-snapshot"
    RENEW_ALL_CERTIFICATES = "renew-all-certificates"
    UNCORDON_LEFT_BY_UPGRADER = "uncordon-left-by-upgrader"
    LEVEL_CONTROL_PLANE = "level-control-plane"
    # runbook steps: control plane and etcd (domain/runbook_actions.py; engine/runbook_manifests.py,
    # runbook_etcd.py, runbook_nodes.py)
    STATIC_POD_STATE = "static-pod-state"
    MANIFEST_DIFF = "manifest-diff"
    RESTORE_BACKUP_MANIFEST = "restore-backup-manifest"
    ETCD_MEMBERS = "etcd-members"
    ETCD_MEMBER_REMOVE = "etcd-member-remove"
    ETCD_MEMBER_RESET = "etcd-member-reset"
    ETCD_MEMBER_ADD = "etcd-member-add"
    ETCD_MEMBER_START = "etcd-member-start"
    ETCD_MEMBER_PROMOTE = "etcd-member-promote"
    ETCD_QUORUM = "etcd-quorum"
    NODE_CONDITIONS = "node-conditions"
    KUBELET_FLAGS_FIX = "kubelet-flags-fix"
    RESTART_KUBELET = "restart-kubelet"


class Reversibility(StrEnum):
    """How a step can be undone, should the run have to go back."""

    NONE = "none"  # nothing to undo: it observes, records or restores schedulability
    UNCORDON = "uncordon"  # a drain is undone by uncordoning; evicted pods reschedule
    PACKAGE_DOWNGRADE = "package-downgrade"  # reinstall the previous package (kubelet: drain first)
    MANIFEST_SWAP = "manifest-swap"  # put back the static pod manifests kubeadm backed up
    ETCD_RESTORE = "etcd-restore"  # restore the hop's etcd snapshot; writes since then are lost
    EMULATED_VERSION = "emulated-version"  # roll the binary back; emulation kept the old behaviour


REVERSIBILITY: dict[Action, Reversibility] = {
    Action.PREFLIGHT: Reversibility.NONE,
    Action.SNAPSHOT: Reversibility.NONE,
    Action.UPGRADE_KUBEADM: Reversibility.PACKAGE_DOWNGRADE,
    Action.KUBEADM_UPGRADE_APPLY: Reversibility.ETCD_RESTORE,
    Action.KUBEADM_UPGRADE_NODE: Reversibility.MANIFEST_SWAP,
    Action.DRAIN: Reversibility.UNCORDON,
    Action.UPGRADE_KUBELET: Reversibility.PACKAGE_DOWNGRADE,
    Action.UNCORDON: Reversibility.NONE,
    Action.HEALTH_GATE: Reversibility.NONE,
    Action.FINALIZE_EMULATED_VERSION: Reversibility.ETCD_RESTORE,  # the point of no return of a two-step hop
    Action.POSTFLIGHT: Reversibility.NONE,
    # A rollback's steps are not undone by another rollback: what they move aside stays on the node
    # (manifests and etcd data under the run's directories), for a person to put back by hand.
    Action.STOP_CONTROL_PLANE: Reversibility.MANIFEST_SWAP,
    Action.MOVE_ETCD_DATA: Reversibility.NONE,
    Action.RESTORE_ETCD: Reversibility.NONE,
    Action.REINSTATE_MANIFESTS: Reversibility.MANIFEST_SWAP,
    Action.DOWNGRADE_PACKAGES: Reversibility.PACKAGE_DOWNGRADE,
    Action.START_CONTROL_PLANE: Reversibility.NONE,
    Action.DOWNGRADE_KUBELET: Reversibility.PACKAGE_DOWNGRADE,
    Action.VERIFY_ROLLBACK: Reversibility.NONE,
    Action.EMULATED_UPGRADE_APPLY: Reversibility.EMULATED_VERSION,
    Action.EMULATED_UPGRADE_NODE: Reversibility.EMULATED_VERSION,
    Action.SOAK: Reversibility.EMULATED_VERSION,
    Action.RESTORE_KUBEADM_CONFIG: Reversibility.NONE,
    Action.SWAP_MANIFESTS: Reversibility.MANIFEST_SWAP,
    # kubeadm keeps no copy of a renewed certificate: there is nothing to go back to, and no need to
    Action.RENEW_CERTIFICATES: Reversibility.NONE,
    Action.RESTART_CONTROL_PLANE: Reversibility.NONE,
    # playbook steps: upgrader cannot know what an operator's command did, so it has nothing to undo
    Action.COMMAND: Reversibility.NONE,
    Action.CHECK: Reversibility.NONE,
    # runbook steps: generic. Those that change the cluster do it through a child run (a rollback, a
    # renewal, the resumed upgrade) whose own steps carry their reversibility; the uncordon only
    # restores schedulability.
    Action.OBSERVE_CLUSTER: Reversibility.NONE,
    Action.WAIT_HEALTHY: Reversibility.NONE,
    Action.ROLLBACK_UPGRADE: Reversibility.NONE,
    Action.PREVIEW_RESTORE: Reversibility.NONE,
    Action.RESTORE_SNAPSHOT: Reversibility.NONE,
    Action.RENEW_ALL_CERTIFICATES: Reversibility.NONE,
    Action.UNCORDON_LEFT_BY_UPGRADER: Reversibility.NONE,
    Action.LEVEL_CONTROL_PLANE: Reversibility.ETCD_RESTORE,
    # runbook steps: control plane and etcd. The reads undo nothing; what the others replace stays in the
    # run's dirs on the node (the quarantined manifest, etcd's old manifest and data dir, the old kubelet
    # flags file), for a person to put back; a restored manifest is swapped back the same way.
    Action.STATIC_POD_STATE: Reversibility.NONE,
    Action.MANIFEST_DIFF: Reversibility.NONE,
    Action.RESTORE_BACKUP_MANIFEST: Reversibility.MANIFEST_SWAP,
    Action.ETCD_MEMBERS: Reversibility.NONE,
    Action.ETCD_MEMBER_REMOVE: Reversibility.NONE,  # undone by adding it again: the steps that follow
    Action.ETCD_MEMBER_RESET: Reversibility.NONE,
    Action.ETCD_MEMBER_ADD: Reversibility.NONE,
    Action.ETCD_MEMBER_START: Reversibility.MANIFEST_SWAP,
    Action.ETCD_MEMBER_PROMOTE: Reversibility.NONE,
    Action.ETCD_QUORUM: Reversibility.NONE,
    Action.NODE_CONDITIONS: Reversibility.NONE,
    Action.KUBELET_FLAGS_FIX: Reversibility.NONE,
    Action.RESTART_KUBELET: Reversibility.NONE,
}


class NoReturnKind(StrEnum):
    """Moments after which going back needs the etcd snapshot (DOMAIN.md, "Irreversible moments")."""

    ETCD_MINOR_UPGRADE = "etcd-minor-upgrade"
    EMULATED_VERSION_RAISED = "emulated-version-raised"
    STORAGE_VERSION_MIGRATION = "storage-version-migration"


@dataclass(frozen=True, slots=True)
class NoReturn:
    """A point of no return: which step passes it, in which hop, and what it costs."""

    kind: NoReturnKind
    step: int
    hop: int
    version: Version
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "step": self.step, "hop": self.hop, "version": str(self.version),
                "detail": self.detail}


class WorkerStrategy(StrEnum):
    SKIP_LEVEL = "skip-level"
    EVERY_MINOR = "every-minor"


class HopKind(StrEnum):
    LEVEL = "level"  # finish a hop a crashed run left half done; no new kubeadm apply
    UPGRADE = "upgrade"


@dataclass(frozen=True, slots=True)
class Strategy:
    workers: WorkerStrategy = WorkerStrategy.SKIP_LEVEL
    max_unavailable: int = 1


@dataclass(frozen=True, slots=True)
class Step:
    n: int
    action: Action
    node: str | None
    version: Version | None
    batch: int | None
    reversibility: Reversibility
    hop: int | None = None  # index into Plan.hops; None for steps outside any hop
    note: str = ""
    # what a playbook or runbook step adds to its action (a command's argv, a check's probe, a runbook
    # step's title and arguments): JSON values, already validated and substituted; empty for built-ins
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "n": self.n,
            "action": str(self.action),
            "node": self.node,
            "version": str(self.version) if self.version else None,
            "batch": self.batch,
            "reversibility": str(self.reversibility),
            "hop": self.hop,
            "note": self.note,
        }
        if self.params:  # plan documents of built-in steps stay as they were
            doc["params"] = dict(self.params)
        return doc


@dataclass(frozen=True, slots=True)
class Hop:
    minor: Minor
    version: Version
    kind: HopKind
    emulate: Minor | None = None  # a two-step hop: the minor the new binaries emulate until finalize
    hold_etcd: bool = False  # a two-step hop that moves etcd's minor: etcd moves at finalize

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"minor": str(self.minor), "version": str(self.version), "kind": str(self.kind)}
        if self.emulate is not None:
            doc |= {"two_step": {"emulate": str(self.emulate), "hold_etcd": self.hold_etcd}}
        return doc


def hop_from_dict(doc: dict[str, Any]) -> Hop:
    two = doc.get("two_step") or {}
    return Hop(Minor.parse(doc["minor"]), Version.parse(doc["version"]), HopKind(doc["kind"]),
               emulate=Minor.parse(two["emulate"]) if two.get("emulate") else None,
               hold_etcd=bool(two.get("hold_etcd", False)))


@dataclass(frozen=True, slots=True)
class Plan:
    cluster: str
    source_version: Version
    target: Version
    source_fingerprint: str
    strategy: Strategy
    skipped_versions: tuple[Version, ...]
    hops: tuple[Hop, ...]
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()
    soak_seconds: float | None = None  # --two-step: how long each two-step hop soaks before finalize
    points_of_no_return: tuple[NoReturn, ...] = ()

    def worker_upgrades(self) -> dict[str, tuple[Version, ...]]:
        """Per worker, the kubelet versions it is taken to, in order."""
        result: dict[str, list[Version]] = {}
        for step in self.steps:
            if step.action is Action.UPGRADE_KUBELET and step.batch is not None and step.node and step.version:
                result.setdefault(step.node, []).append(step.version)
        return {k: tuple(v) for k, v in result.items()}

    def to_dict(self) -> dict[str, Any]:
        """The plan document: stored in the ledger and printed by ``plan -o json``."""
        return {
            "cluster": self.cluster,
            "target": str(self.target),
            "source": {"fingerprint": self.source_fingerprint, "control_plane_version": str(self.source_version)},
            "strategy": {"workers": str(self.strategy.workers), "max_unavailable": self.strategy.max_unavailable},
            "skipped_versions": [str(v) for v in self.skipped_versions],
            "hops": [h.to_dict() for h in self.hops],
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
            "two_step": {"soak_seconds": self.soak_seconds} if self.soak_seconds is not None else None,
            "points_of_no_return": [p.to_dict() for p in self.points_of_no_return],
        }


def plan_from_dict(doc: dict[str, Any]) -> Plan:
    """The inverse of Plan.to_dict, for plans read back from the ledger."""

    def version(text: str | None) -> Version | None:
        return Version.parse(text) if text else None

    strategy = doc["strategy"]
    return Plan(
        cluster=doc["cluster"],
        source_version=Version.parse(doc["source"]["control_plane_version"]),
        target=Version.parse(doc["target"]),
        source_fingerprint=doc["source"]["fingerprint"],
        strategy=Strategy(workers=WorkerStrategy(strategy["workers"]), max_unavailable=strategy["max_unavailable"]),
        skipped_versions=tuple(Version.parse(v) for v in doc["skipped_versions"]),
        hops=tuple(hop_from_dict(h) for h in doc["hops"]),
        steps=tuple(
            Step(n=s["n"], action=Action(s["action"]), node=s["node"], version=version(s["version"]), batch=s["batch"],
                 reversibility=Reversibility(s["reversibility"]), hop=s.get("hop"), note=s.get("note", ""),
                 params=s.get("params") or {})
            for s in doc["steps"]
        ),
        warnings=tuple(doc.get("warnings", ())),
        soak_seconds=(doc.get("two_step") or {}).get("soak_seconds"),
        points_of_no_return=tuple(
            NoReturn(NoReturnKind(p["kind"]), p["step"], p["hop"], Version.parse(p["version"]), p["detail"])
            for p in doc.get("points_of_no_return", ())
        ),
    )
