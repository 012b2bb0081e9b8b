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
from typing import Any

from upgrader.domain.runs import EventId, FencingToken, ObservationId, PlanId, RunId


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
