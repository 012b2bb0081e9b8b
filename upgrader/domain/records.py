"""Plain values the ledger hands out (through the UnitOfWork port), so nothing above it ever holds a
live ORM object.

Records are frozen snapshots read inside a unit of work; they stay valid after the session is
closed and carry no lazy-loading surprises. The run vocabulary (statuses, ids) is in ``runs``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

from upgrader.domain.runs import EventId, FencingToken, ObservationId, PlanId, RunId, RunStatus, StepStatus


class ObservationSource(StrEnum):
    """Where an inventory came from: a file given by the user, or the live cluster."""

    FILE = "file"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class SkipRecord:
    """A version the cluster must never be upgraded to or through, and why."""

    version: str
    reason: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClusterRecord:
    name: str
    kubeconfig: str
    context: str | None
    transport: Mapping[str, Any] | None
    created_at: datetime
    skips: tuple[SkipRecord, ...]
    created_by: str
    schedule: Mapping[str, Any] | None = None  # the schedule policy (domain.schedule), None: not scheduled
    playbooks_dir: str | None = None  # the upgrade playbooks its plans expand (`cluster set --playbooks`)


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    id: ObservationId
    cluster: str
    observed_at: datetime
    fingerprint: str
    source: ObservationSource
    inventory: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NewObservation:
    """An inventory to record together with the plan made from it."""

    observed_at: datetime
    fingerprint: str
    source: ObservationSource
    inventory: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PlanStepRecord:
    n: int
    action: str
    node: str | None
    version: str | None
    batch: int | None
    reversibility: str


@dataclass(frozen=True, slots=True)
class PlanRecord:
    id: PlanId
    cluster: str
    created_at: datetime
    created_by: str
    target: str
    document: Mapping[str, Any]
    observation_id: ObservationId | None
    strategy: Mapping[str, Any]
    skipped_versions: Sequence[str]
    source_fingerprint: str | None
    steps: tuple[PlanStepRecord, ...]


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: EventId
    at: datetime
    cluster: str | None
    run_id: RunId | None
    actor: str
    host: str
    command_line: str
    kind: str
    data: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class LockRecord:
    """A lease on a cluster: valid until ``expires_at``; ``fencing_token`` orders every holder."""

    cluster: str
    holder: str
    run_id: RunId | None
    fencing_token: FencingToken
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RunStepRecord:
    """One step of a run as the ledger holds it: the plan's step plus what happened to it."""

    n: int
    action: str
    node: str | None
    version: str | None
    batch: int | None
    status: StepStatus
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    outputs: Mapping[str, Any] | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run of a plan: who started it, where, under which lease token, with which options
    (``apply``'s flags, kept so ``resume`` continues with the same ones), and how it ended
    (``outcome``: the error, the snapshot to restore, the next command)."""

    id: RunId
    plan_id: PlanId
    cluster: str
    status: RunStatus
    started_by: str
    host: str
    command_line: str
    fencing_token: FencingToken
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    options: Mapping[str, Any]
    outcome: Mapping[str, Any] | None
    steps: tuple[RunStepRecord, ...]
    rollback_of: RunId | None = None  # this run is the rollback of that one
    rolled_back_by: tuple[RunId, ...] = ()  # the runs that rolled this one back


SnapshotId = NewType("SnapshotId", int)


class SnapshotState(StrEnum):
    """A recorded snapshot is ``complete`` (its files verified when it was stored); ``deleted`` once
    pruned: the row stays for the audit trail, the files are gone."""

    COMPLETE = "complete"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class SnapshotArtefact:
    """A control-plane file captured with a snapshot: where it was on the node, where it is stored."""

    node: str
    kind: str  # manifest, kubelet-config, kubelet-flags, packages, repo-config, kubeadm-config
    node_path: str  # on the node ("/etc/kubernetes/manifests/etcd.yaml"), or "configmap:kube-system/..."
    stored_path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "kind": self.kind, "node_path": self.node_path,
                "stored_path": self.stored_path, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SnapshotArtefact:
        return cls(node=str(doc["node"]), kind=str(doc["kind"]), node_path=str(doc["node_path"]),
                   stored_path=str(doc["stored_path"]), sha256=str(doc["sha256"]), size=int(doc["size"]))


@dataclass(frozen=True, slots=True)
class NewSnapshot:
    """A snapshot to record: its files are stored and verified already."""

    cluster: str
    created_at: datetime
    created_by: str
    label: str | None
    path: str
    size: int
    sha256: str
    # hash, revision, total_keys, total_size, version (the tool's), etcd_version (the member's), member_ids
    etcd_status: Mapping[str, Any]
    source_member: str
    external: bool
    versions: Mapping[str, Any]
    artefacts: tuple[SnapshotArtefact, ...]
    known_good: bool
    known_good_reason: str | None
    run_id: RunId | None = None


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    id: SnapshotId
    cluster: str
    created_at: datetime
    created_by: str
    label: str | None
    path: str
    size: int
    sha256: str
    etcd_status: Mapping[str, Any]
    source_member: str
    external: bool
    versions: Mapping[str, Any]
    artefacts: tuple[SnapshotArtefact, ...]
    known_good: bool
    known_good_reason: str | None
    pinned: bool
    status: SnapshotState
    deleted_at: datetime | None
    run_id: RunId | None
