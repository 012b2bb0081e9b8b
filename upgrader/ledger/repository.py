"""The ledger repository: reads and writes records inside the caller's unit of work.

It hands out frozen records (``records.py``), never ORM rows, and raises the project's own errors
for expected conditions (unknown cluster, duplicate name, held lock). It never commits: the unit
of work decides. Writes that may race with another process (cluster names, skips, leases) are
single statements whose conflicts the database detects, translated here with ``raise .. from``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, selectinload

from upgrader import errors
from upgrader.domain.catalog import Release, StoredCatalog
from upgrader.domain.records import (
    ClusterRecord,
    EventRecord,
    LockRecord,
    NewObservation,
    NewSnapshot,
    ObservationRecord,
    ObservationSource,
    PlanRecord,
    RunRecord,
    RunStepRecord,
    SkipRecord,
    SnapshotId,
    SnapshotRecord,
)
from upgrader.domain.runs import EventId, FencingToken, ObservationId, PlanId, RunStatus, StepStatus
from upgrader.ledger import catalog, locks, plan_steps, rows, runs, snapshots
from upgrader.ledger.models import (
    Cluster,
    ClusterLock,
    EncodedJson,
    Event,
    Observation,
    Plan,
    RunStep,
    SkippedVersion,
)


class SqlRepository:
    def __init__(self, session: Session, *, clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    # clusters -----------------------------------------------------------------------------

    def add_cluster(self, *, name: str, kubeconfig: str, context: str | None, transport: Mapping[str, Any] | None,
                    actor: str) -> ClusterRecord:
        now = self._clock()
        row = Cluster(
            name=name,
            kubeconfig=kubeconfig,
            context=context,
            transport=dict(transport) if transport is not None else None,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        try:
            # A savepoint: a concurrent insert of the same name fails here (PostgreSQL waits for
            # the other transaction, then reports the unique violation) without spoiling the rest.
            with self._session.begin_nested():
                self._session.add(row)
        except sa_exc.IntegrityError as e:
            raise errors.ClusterExistsError(f"cluster {name!r} already exists") from e
        return rows.cluster(row)

    def get_cluster(self, name: str) -> ClusterRecord:
        return rows.cluster(self._cluster_row(name))

    def list_clusters(self) -> list[ClusterRecord]:
        query = sa.select(Cluster).options(selectinload(Cluster.skips)).order_by(Cluster.name)
        return [rows.cluster(row) for row in self._session.scalars(query)]

    def set_cluster_transport(self, name: str, transport: Mapping[str, Any] | None) -> ClusterRecord:
        """Replace the cluster's node transport settings (None: none set)."""
        row = self._cluster_row(name)
        row.transport = dict(transport) if transport is not None else None
        row.updated_at = self._clock()
        self._session.flush()
        return rows.cluster(row)

    def set_cluster_schedule(self, name: str, policy: Mapping[str, Any] | None) -> ClusterRecord:
        """Replace the cluster's schedule policy (None: not scheduled)."""
        row = self._cluster_row(name)
        row.schedule_policy = dict(policy) if policy is not None else None
        row.updated_at = self._clock()
        self._session.flush()
        return rows.cluster(row)

    def set_cluster_playbooks(self, name: str, directory: str | None) -> ClusterRecord:
        """Replace the directory of the upgrade playbooks the cluster's plans expand (None: the shipped ones)."""
        row = self._cluster_row(name)
        row.playbooks_dir = directory
        row.updated_at = self._clock()
        self._session.flush()
        return rows.cluster(row)

    def recent_step_seconds(self, limit: int = 2000) -> dict[str, list[float]]:
        """How long the newest ``limit`` succeeded steps took, by action (every cluster): the
        schedule's estimates of what still fits in a maintenance window."""
        query = (sa.select(RunStep.action, RunStep.started_at, RunStep.finished_at)
                 .where(RunStep.status == StepStatus.SUCCEEDED.value, RunStep.started_at.is_not(None),
                        RunStep.finished_at.is_not(None))
                 .order_by(RunStep.finished_at.desc()).limit(limit))
        found: dict[str, list[float]] = {}
        for action, started, finished in self._session.execute(query):
            if started is not None and finished is not None:  # the query's filter: for the type checker
                found.setdefault(action, []).append(max(0.0, (finished - started).total_seconds()))
        return found

    def remove_cluster(self, name: str) -> None:
        """Delete the cluster and all it owns; its events stay (they name it by value)."""
        cluster_id = self._cluster_row(name).id
        self._session.execute(sa.delete(ClusterLock).where(ClusterLock.cluster_name == name))
        self._session.execute(
            sa.delete(Cluster).where(Cluster.id == cluster_id).execution_options(synchronize_session=False)
        )
        self._session.expire_all()

    # skipped versions ---------------------------------------------------------------------

    def add_skip(self, *, cluster: str, version: str, reason: str, actor: str) -> SkipRecord:
        """Record (or re-word) a skipped version; adding it twice only updates the reason."""
        cluster_id = self._cluster_row(cluster).id
        ins = locks.upsert(self._session, SkippedVersion).values(
            cluster_id=cluster_id, version=version, reason=reason, created_by=actor, created_at=self._clock()
        )
        self._session.execute(
            ins.on_conflict_do_update(
                index_elements=[SkippedVersion.cluster_id, SkippedVersion.version],
                set_={"reason": ins.excluded.reason},
            )
        )
        self._session.expire_all()
        row = self._session.scalars(sa.select(SkippedVersion).filter_by(cluster_id=cluster_id, version=version)).one()
        return rows.skip(row)

    def remove_skip(self, *, cluster: str, version: str) -> bool:
        cluster_id = self._cluster_row(cluster).id
        result = self._session.execute(
            sa.delete(SkippedVersion)
            .filter_by(cluster_id=cluster_id, version=version)
            .execution_options(synchronize_session=False)
        )
        self._session.expire_all()
        return cast(sa.CursorResult[Any], result).rowcount > 0

    # observations and plans ---------------------------------------------------------------

    def record_observation(
        self,
        *,
        cluster: str,
        observed_at: datetime,
        fingerprint: str,
        source: str,
        inventory: Mapping[str, Any],
    ) -> ObservationId:
        row = Observation(
            cluster_id=self._cluster_row(cluster).id,
            observed_at=observed_at,
            fingerprint=fingerprint,
            source=ObservationSource(source).value,
            inventory=dict(inventory),
        )
        self._session.add(row)
        self._session.flush()
        return ObservationId(row.id)

    def latest_observation(self, cluster: str) -> ObservationRecord | None:
        row = self._session.scalars(
            sa.select(Observation)
            .where(Observation.cluster_id == self._cluster_row(cluster).id)
            .order_by(Observation.observed_at.desc(), Observation.id.desc())
            .limit(1)
        ).first()
        return None if row is None else rows.observation(row, cluster=cluster)

    def get_observation(self, observation_id: int) -> ObservationRecord | None:
        row = self._session.get(Observation, observation_id)
        cluster = self._session.get(Cluster, row.cluster_id) if row is not None else None
        return None if row is None or cluster is None else rows.observation(row, cluster=cluster.name)

    def save_plan(
        self,
        *,
        cluster: str,
        observation: NewObservation | None,
        created_by: str,
        target: str,
        strategy: Mapping[str, Any],
        skipped_versions: Sequence[str],
        source_fingerprint: str | None,
        document: Mapping[str, Any],
        steps: Sequence[Mapping[str, Any]],
    ) -> PlanId:
        """The plan, and the observation it was made from, in as short a write as possible.

        The first statement of a unit of work takes SQLite's write lock, and a 10,000-node plan is
        ~50 MB of JSON and ~350,000 step rows: everything that is only Python (encoding, building
        the rows, checking the source) happens before it, so other runs wait for the inserts alone.
        Plain inserts, not ORM objects: nothing large is kept in the session.
        """
        encoded_document = EncodedJson.of(dict(document))
        new_observation = None if observation is None else {
            "observed_at": observation.observed_at,
            "fingerprint": observation.fingerprint,
            "source": ObservationSource(observation.source).value,
            "inventory": EncodedJson.of(dict(observation.inventory)),
        }
        step_rows = [plan_steps.row(step) for step in steps]
        created_at = self._clock()
        cluster_id = self._cluster_row(cluster).id  # the write lock is taken here
        observation_id = None
        if new_observation is not None:
            observation_id = self._insert(Observation, cluster_id=cluster_id, **new_observation)
        plan_id = self._insert(
            Plan,
            cluster_id=cluster_id,
            observation_id=observation_id,
            created_at=created_at,
            created_by=created_by,
            target=target,
            strategy=dict(strategy),
            skipped_versions=list(skipped_versions),
            source_fingerprint=source_fingerprint,
            document=encoded_document,
        )
        if step_rows:
            plan_steps.insert(self._session, plan_id, step_rows)
        return PlanId(plan_id)

    def get_plan(self, plan_id: int) -> PlanRecord:
        row = self._session.scalars(_plans().where(Plan.id == plan_id)).one_or_none()
        if row is None:
            raise errors.PlanNotFoundError(f"no plan with id {plan_id} (see `upgrader plans list`)")
        return rows.plan(row)

    def list_plans(self, cluster: str | None = None) -> list[PlanRecord]:
        query = _plans().order_by(Plan.id)
        if cluster is not None:
            query = query.where(Plan.cluster_id == self._cluster_row(cluster).id)
        return [rows.plan(row) for row in self._session.scalars(query)]

    # events -------------------------------------------------------------------------------

    def append_event(
        self,
        *,
        kind: str,
        actor: str,
        host: str,
        command_line: str,
        cluster: str | None = None,
        run_id: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> EventId:
        row = Event(
            at=self._clock(),
            cluster_name=cluster,
            run_id=run_id,
            actor=actor,
            host=host,
            command_line=command_line,
            kind=kind,
            data=dict(data) if data is not None else None,
        )
        self._session.add(row)
        self._session.flush()
        return EventId(row.id)

    def list_events(self, cluster: str | None = None, limit: int = 100, *, run_id: int | None = None,
                    kind: str | None = None) -> list[EventRecord]:
        """The latest ``limit`` events, oldest first (a tail of the audit stream); only those of
        ``run_id`` and of ``kind`` when given (read within the cluster's index, no scan of the tail)."""
        query = sa.select(Event).order_by(Event.id.desc()).limit(limit)
        if cluster is not None:
            query = query.where(Event.cluster_name == cluster)
        if run_id is not None:
            query = query.where(Event.run_id == run_id)
        if kind is not None:
            query = query.where(Event.kind == kind)
        return [rows.event(row) for row in reversed(self._session.scalars(query).all())]

    # locks --------------------------------------------------------------------------------

    def acquire_lock(
        self, *, cluster: str, holder: str, ttl_seconds: float, now: datetime, run_id: int | None = None,
        take_over: int | None = None,
    ) -> FencingToken:
        """Take the cluster's lease (or an expired one, or a dead holder's) and return its fencing token."""
        return locks.acquire(self._session, cluster=cluster, holder=holder, ttl_seconds=ttl_seconds, now=now,
                             run_id=run_id, take_over=take_over)

    def renew_lock(self, *, cluster: str, token: int, ttl_seconds: float, now: datetime) -> None:
        locks.renew(self._session, cluster=cluster, token=token, ttl_seconds=ttl_seconds, now=now)

    def release_lock(self, *, cluster: str, token: int) -> bool:
        return locks.release(self._session, cluster=cluster, token=token)

    def get_lock(self, cluster: str) -> LockRecord | None:
        return locks.get(self._session, cluster)

    # snapshots ----------------------------------------------------------------------------

    def add_snapshot(self, snapshot: NewSnapshot) -> SnapshotRecord:
        return snapshots.add(self._session, snapshot, cluster_id=self._cluster_row(snapshot.cluster).id)

    def get_snapshot(self, snapshot_id: int) -> SnapshotRecord:
        return snapshots.get(self._session, snapshot_id)

    def list_snapshots(self, cluster: str | None = None, *, include_deleted: bool = False) -> list[SnapshotRecord]:
        cluster_id = None if cluster is None else self._cluster_row(cluster).id
        return snapshots.list_(self._session, cluster_id=cluster_id, include_deleted=include_deleted)

    def set_snapshot_pinned(self, snapshot_id: int, pinned: bool) -> SnapshotRecord:
        return snapshots.set_pinned(self._session, snapshot_id, pinned)

    def mark_snapshot_deleted(self, snapshot_id: int) -> SnapshotRecord:
        return snapshots.mark_deleted(self._session, snapshot_id, self._clock())

    def snapshots_in_use(self, cluster: str) -> set[SnapshotId]:
        return snapshots.in_use(self._session, cluster_id=self._cluster_row(cluster).id)

    # runs (fenced by the lease token: upgrader.ledger.runs) ---------------------------------

    def create_run(self, *, plan_id: int, started_by: str, host: str, command_line: str, token: int,
                   options: Mapping[str, Any], rollback_of: int | None = None) -> RunRecord:
        return runs.create(self._session, plan_id=plan_id, started_by=started_by, host=host,
                           command_line=command_line, token=token, options=options, now=self._clock(),
                           rollback_of=rollback_of)

    def get_run(self, run_id: int) -> RunRecord:
        return runs.get(self._session, run_id)

    def list_runs(self, cluster: str | None = None, *, plan_id: int | None = None) -> list[RunRecord]:
        cluster_id = None if cluster is None else self._cluster_row(cluster).id
        return runs.list_(self._session, cluster_id=cluster_id, plan_id=plan_id)

    def claim_run(self, run_id: int, *, token: int) -> RunRecord:
        return runs.claim(self._session, run_id, token=token)

    def set_run_status(self, run_id: int, status: RunStatus, *, token: int,
                       outcome: Mapping[str, Any] | None = None) -> RunRecord:
        return runs.set_status(self._session, run_id, status, token=token, outcome=outcome, now=self._clock())

    def start_step(self, run_id: int, n: int, *, token: int) -> RunStepRecord:
        return runs.start_step(self._session, run_id, n, token=token, now=self._clock())

    def finish_step(self, run_id: int, n: int, status: StepStatus, *, token: int,
                    outputs: Mapping[str, Any] | None = None, error: str | None = None) -> RunStepRecord:
        return runs.finish_step(self._session, run_id, n, status, token=token, outputs=outputs, error=error,
                                now=self._clock())

    # helpers ------------------------------------------------------------------------------

    def _insert(self, model: type[Observation | Plan], **values: Any) -> int:
        """One plain INSERT .. RETURNING id; the row is not added to the session."""
        return int(self._session.execute(sa.insert(model).values(**values).returning(model.id)).scalar_one())

    def _cluster_row(self, name: str) -> Cluster:
        row = self._session.scalars(
            sa.select(Cluster).options(selectinload(Cluster.skips)).where(Cluster.name == name)
        ).one_or_none()
        if row is None:
            raise errors.ClusterNotFoundError(f"no cluster named {name!r} (see `upgrader cluster list`)")
        return row

    # the release catalog (upgrader.ledger.catalog) ---------------------------------------------

    def save_releases(self, releases: Sequence[Release], *, source: str, fetched_at: datetime) -> None:
        catalog.save(self._session, releases, source=source, fetched_at=fetched_at)

    def stored_catalog(self) -> StoredCatalog | None:
        return catalog.stored(self._session)


def _plans() -> sa.Select[Plan]:
    return sa.select(Plan).options(selectinload(Plan.steps), selectinload(Plan.cluster))
