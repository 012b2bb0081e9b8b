"""The snapshots' rows: recorded once verified, pinned and unpinned, marked deleted by prune.

SqlRepository delegates here so that the repository module stays readable. A snapshot is written
in one INSERT with everything it is (never half-recorded); a pruned one keeps its row, ``deleted``,
so the audit trail and the events that name it still make sense.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upgrader import errors
from upgrader.domain.records import NewSnapshot, SnapshotArtefact, SnapshotId, SnapshotRecord, SnapshotState
from upgrader.domain.runs import FINAL_RUN_STATUSES, RunId
from upgrader.ledger.models import Cluster, Run, Snapshot


def add(session: Session, snapshot: NewSnapshot, *, cluster_id: int) -> SnapshotRecord:
    if snapshot.run_id is not None and session.get(Run, snapshot.run_id) is None:
        raise errors.RunNotFoundError(f"no run with id {snapshot.run_id}: a snapshot cannot refer to it")
    row = Snapshot(
        cluster_id=cluster_id,
        run_id=snapshot.run_id,
        created_at=snapshot.created_at,
        created_by=snapshot.created_by,
        label=snapshot.label,
        path=snapshot.path,
        size=snapshot.size,
        sha256=snapshot.sha256,
        etcd_status=dict(snapshot.etcd_status),
        source_member=snapshot.source_member,
        external=snapshot.external,
        versions=dict(snapshot.versions),
        artefacts=[a.to_dict() for a in snapshot.artefacts],
        known_good=snapshot.known_good,
        known_good_reason=snapshot.known_good_reason,
        pinned=False,
        status=SnapshotState.COMPLETE.value,
        deleted_at=None,
    )
    session.add(row)
    session.flush()
    return record(row, cluster=snapshot.cluster)


def get(session: Session, snapshot_id: int) -> SnapshotRecord:
    found = session.execute(
        sa.select(Snapshot, Cluster.name).join(Cluster, Cluster.id == Snapshot.cluster_id)
        .where(Snapshot.id == snapshot_id)
    ).one_or_none()
    if found is None:
        raise errors.SnapshotNotFoundError(f"no snapshot with id {snapshot_id} (see `upgrader snapshot list`)")
    return record(found[0], cluster=found[1])


def list_(session: Session, *, cluster_id: int | None, include_deleted: bool) -> list[SnapshotRecord]:
    query = (sa.select(Snapshot, Cluster.name).join(Cluster, Cluster.id == Snapshot.cluster_id)
             .order_by(Snapshot.created_at, Snapshot.id))
    if cluster_id is not None:
        query = query.where(Snapshot.cluster_id == cluster_id)
    if not include_deleted:
        query = query.where(Snapshot.status != SnapshotState.DELETED.value)
    return [record(row, cluster=name) for row, name in session.execute(query)]


def set_pinned(session: Session, snapshot_id: int, pinned: bool) -> SnapshotRecord:
    get(session, snapshot_id)
    session.execute(sa.update(Snapshot).where(Snapshot.id == snapshot_id).values(pinned=pinned)
                    .execution_options(synchronize_session=False))
    session.expire_all()
    return get(session, snapshot_id)


def mark_deleted(session: Session, snapshot_id: int, at: datetime) -> SnapshotRecord:
    get(session, snapshot_id)
    session.execute(sa.update(Snapshot).where(Snapshot.id == snapshot_id)
                    .values(status=SnapshotState.DELETED.value, deleted_at=at)
                    .execution_options(synchronize_session=False))
    session.expire_all()
    return get(session, snapshot_id)


def in_use(session: Session, *, cluster_id: int) -> set[SnapshotId]:
    """Snapshots a run that has not reached a final status refers to (it may still need them to roll back)."""
    query = (sa.select(Snapshot.id).join(Run, Run.id == Snapshot.run_id)
             .where(Snapshot.cluster_id == cluster_id, Run.status.not_in([s.value for s in FINAL_RUN_STATUSES])))
    return {SnapshotId(i) for i in session.scalars(query)}


def record(row: Snapshot, *, cluster: str) -> SnapshotRecord:
    return SnapshotRecord(
        id=SnapshotId(row.id),
        cluster=cluster,
        created_at=row.created_at,
        created_by=row.created_by,
        label=row.label,
        path=row.path,
        size=row.size,
        sha256=row.sha256,
        etcd_status=dict(row.etcd_status),
        source_member=row.source_member,
        external=row.external,
        versions=dict(row.versions),
        artefacts=tuple(SnapshotArtefact.from_dict(a) for a in row.artefacts),
        known_good=row.known_good,
        known_good_reason=row.known_good_reason,
        pinned=row.pinned,
        status=SnapshotState(row.status),
        deleted_at=row.deleted_at,
        run_id=RunId(row.run_id) if row.run_id is not None else None,
    )
