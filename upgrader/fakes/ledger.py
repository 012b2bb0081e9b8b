"""The ledger's fake: an in-memory Repository and UnitOfWork with the SQL ledger's rules."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

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
    PlanStepRecord,
    RunRecord,
    SkipRecord,
    SnapshotId,
    SnapshotRecord,
    SnapshotState,
)
from upgrader.domain.runs import (
    FINAL_RUN_STATUSES,
    EventId,
    FencingToken,
    ObservationId,
    PlanId,
    RunId,
    RunStatus,
    StepStatus,
)
from upgrader.domain.versions import Version
from upgrader.fakes.ledger_runs import InMemoryRuns


@dataclass
class _State:
    clusters: dict[str, ClusterRecord] = field(default_factory=dict)
    observations: list[ObservationRecord] = field(default_factory=list)
    plans: dict[int, PlanRecord] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)
    locks: dict[str, LockRecord] = field(default_factory=dict)
    snapshots: dict[int, SnapshotRecord] = field(default_factory=dict)
    runs: dict[int, RunRecord] = field(default_factory=dict)
    run_statuses: dict[int, RunStatus] = field(default_factory=dict)  # stand-ins: InMemoryLedger.set_run_status
    next_id: dict[str, int] = field(default_factory=dict)
    catalog: dict[Version, tuple[Release, str, datetime]] = field(default_factory=dict)  # release, source, fetched

    def new_id(self, kind: str) -> int:
        self.next_id[kind] = self.next_id.get(kind, 0) + 1
        return self.next_id[kind]


class InMemoryRepository(InMemoryRuns):
    """The Repository port over plain dicts; ids count from 1 and are never reused, like the ledger's."""

    def __init__(self, state: _State, *, clock: Callable[[], datetime]) -> None:
        self._s = state
        self._clock = clock

    # clusters
    def add_cluster(self, *, name: str, kubeconfig: str, context: str | None,
                    transport: Mapping[str, Any] | None, actor: str) -> ClusterRecord:
        if name in self._s.clusters:
            raise errors.ClusterExistsError(f"cluster {name!r} already exists")
        record = ClusterRecord(name=name, kubeconfig=kubeconfig, context=context,
                               transport=dict(transport) if transport is not None else None,
                               created_at=self._clock(), skips=(), created_by=actor)
        self._s.clusters[name] = record
        return record

    def get_cluster(self, name: str) -> ClusterRecord:
        try:
            return self._s.clusters[name]
        except KeyError:
            raise errors.ClusterNotFoundError(f"no cluster named {name!r} (see `upgrader cluster list`)") from None

    def list_clusters(self) -> list[ClusterRecord]:
        return [self._s.clusters[n] for n in sorted(self._s.clusters)]

    def set_cluster_transport(self, name: str, transport: Mapping[str, Any] | None) -> ClusterRecord:
        record = replace(self.get_cluster(name), transport=copy.deepcopy(dict(transport)) if transport else None)
        self._s.clusters[name] = record
        return record

    def set_cluster_schedule(self, name: str, policy: Mapping[str, Any] | None) -> ClusterRecord:
        record = replace(self.get_cluster(name), schedule=copy.deepcopy(dict(policy)) if policy is not None else None)
        self._s.clusters[name] = record
        return record

    def set_cluster_playbooks(self, name: str, directory: str | None) -> ClusterRecord:
        record = replace(self.get_cluster(name), playbooks_dir=directory)
        self._s.clusters[name] = record
        return record

    def recent_step_seconds(self, limit: int = 2000) -> dict[str, list[float]]:
        done = sorted(((s.finished_at, s.action, (s.finished_at - s.started_at).total_seconds())
                       for r in self._s.runs.values() for s in r.steps
                       if s.status is StepStatus.SUCCEEDED and s.started_at and s.finished_at), reverse=True)[:limit]
        found: dict[str, list[float]] = {}
        for _, action, seconds in done:
            found.setdefault(action, []).append(max(0.0, seconds))
        return found

    def remove_cluster(self, name: str) -> None:
        self.get_cluster(name)
        del self._s.clusters[name]
        self._s.locks.pop(name, None)
        self._s.observations = [o for o in self._s.observations if o.cluster != name]
        self._s.plans = {k: p for k, p in self._s.plans.items() if p.cluster != name}
        self._s.snapshots = {k: v for k, v in self._s.snapshots.items() if v.cluster != name}
        self._s.runs = {k: r for k, r in self._s.runs.items() if r.cluster != name}

    # skipped versions
    def add_skip(self, *, cluster: str, version: str, reason: str, actor: str) -> SkipRecord:
        record = self.get_cluster(cluster)
        existing = next((s for s in record.skips if s.version == version), None)
        skip = (replace(existing, reason=reason) if existing is not None
                else SkipRecord(version=version, reason=reason, created_by=actor, created_at=self._clock()))
        skips = tuple(sorted([*(s for s in record.skips if s.version != version), skip], key=lambda s: s.version))
        self._s.clusters[cluster] = replace(record, skips=skips)
        return skip

    def remove_skip(self, *, cluster: str, version: str) -> bool:
        record = self.get_cluster(cluster)
        kept = tuple(s for s in record.skips if s.version != version)
        self._s.clusters[cluster] = replace(record, skips=kept)
        return len(kept) != len(record.skips)

    # observations and plans
    def record_observation(self, *, cluster: str, observed_at: datetime, fingerprint: str, source: str,
                           inventory: Mapping[str, Any]) -> ObservationId:
        self.get_cluster(cluster)
        oid = ObservationId(self._s.new_id("observation"))
        self._s.observations.append(ObservationRecord(id=oid, cluster=cluster, observed_at=observed_at,
                                                      fingerprint=fingerprint, source=ObservationSource(source),
                                                      inventory=copy.deepcopy(dict(inventory))))
        return oid

    def latest_observation(self, cluster: str) -> ObservationRecord | None:
        self.get_cluster(cluster)
        mine = [o for o in self._s.observations if o.cluster == cluster]
        return max(mine, key=lambda o: (o.observed_at, o.id)) if mine else None

    def get_observation(self, observation_id: int) -> ObservationRecord | None:
        return next((o for o in self._s.observations if o.id == observation_id), None)

    def save_plan(self, *, cluster: str, observation: NewObservation | None, created_by: str, target: str,
                  strategy: Mapping[str, Any], skipped_versions: Sequence[str], source_fingerprint: str | None,
                  document: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> PlanId:
        self.get_cluster(cluster)
        observation_id = None if observation is None else self.record_observation(
            cluster=cluster, observed_at=observation.observed_at, fingerprint=observation.fingerprint,
            source=observation.source, inventory=observation.inventory)
        pid = PlanId(self._s.new_id("plan"))
        self._s.plans[pid] = PlanRecord(
            id=pid, cluster=cluster, created_at=self._clock(), created_by=created_by, target=target,
            document=copy.deepcopy(dict(document)),
            observation_id=ObservationId(observation_id) if observation_id is not None else None,
            strategy=dict(strategy), skipped_versions=list(skipped_versions), source_fingerprint=source_fingerprint,
            steps=tuple(PlanStepRecord(n=s["n"], action=s["action"], node=s.get("node"), version=s.get("version"),
                                       batch=s.get("batch"), reversibility=s["reversibility"])
                        for s in steps))
        return pid

    def get_plan(self, plan_id: int) -> PlanRecord:
        try:
            return self._s.plans[plan_id]
        except KeyError:
            raise errors.PlanNotFoundError(f"no plan with id {plan_id} (see `upgrader plans list`)") from None

    def list_plans(self, cluster: str | None = None) -> list[PlanRecord]:
        if cluster is not None:
            self.get_cluster(cluster)
        return [p for _, p in sorted(self._s.plans.items()) if cluster is None or p.cluster == cluster]

    # events
    def append_event(self, *, kind: str, actor: str, host: str, command_line: str, cluster: str | None = None,
                     run_id: int | None = None, data: Mapping[str, Any] | None = None) -> EventId:
        eid = EventId(self._s.new_id("event"))
        self._s.events.append(EventRecord(id=eid, at=self._clock(), cluster=cluster,
                                          run_id=RunId(run_id) if run_id is not None else None, actor=actor,
                                          host=host, command_line=command_line, kind=kind,
                                          data=copy.deepcopy(dict(data)) if data is not None else None))
        return eid

    def list_events(self, cluster: str | None = None, limit: int = 100, *, run_id: int | None = None,
                    kind: str | None = None) -> list[EventRecord]:
        mine = [e for e in self._s.events if (cluster is None or e.cluster == cluster)
                and (run_id is None or e.run_id == run_id) and (kind is None or e.kind == kind)]
        return mine[-limit:] if limit > 0 else []

    # locks
    def acquire_lock(self, *, cluster: str, holder: str, ttl_seconds: float, now: datetime,
                     run_id: int | None = None, take_over: int | None = None) -> FencingToken:
        token = FencingToken(self._s.new_id("fencing-token"))  # spent even when refused, as in the ledger
        lease = self._s.locks.get(cluster)
        if (lease is not None and lease.expires_at > now and lease.holder != holder
                and (take_over is None or lease.fencing_token != take_over)):
            run = f", run {lease.run_id}" if lease.run_id is not None else ""
            raise errors.RunLockedError(f"cluster {cluster!r} is locked by {lease.holder} (token "
                                        f"{lease.fencing_token}{run}) until {lease.expires_at:%Y-%m-%dT%H:%M:%SZ}")
        self._s.locks[cluster] = LockRecord(cluster=cluster, holder=holder,
                                            run_id=RunId(run_id) if run_id is not None else None,
                                            fencing_token=token, acquired_at=now,
                                            expires_at=now + timedelta(seconds=ttl_seconds))
        return token

    def renew_lock(self, *, cluster: str, token: int, ttl_seconds: float, now: datetime) -> None:
        lease = self._s.locks.get(cluster)
        if lease is None or lease.fencing_token != token:
            now_held = f"; it is now held by {lease.holder} (token {lease.fencing_token})" if lease else ""
            raise errors.LockLostError(
                f"the lease on cluster {cluster!r} with token {token} is no longer held{now_held}")
        self._s.locks[cluster] = replace(lease, expires_at=now + timedelta(seconds=ttl_seconds))

    def release_lock(self, *, cluster: str, token: int) -> bool:
        lease = self._s.locks.get(cluster)
        if lease is None or lease.fencing_token != token:
            return False
        del self._s.locks[cluster]
        return True

    def get_lock(self, cluster: str) -> LockRecord | None:
        return self._s.locks.get(cluster)

    # snapshots
    def add_snapshot(self, snapshot: NewSnapshot) -> SnapshotRecord:
        self.get_cluster(snapshot.cluster)
        if snapshot.run_id is not None and self._run_status(snapshot.run_id) is None:
            raise errors.RunNotFoundError(f"no run with id {snapshot.run_id}: a snapshot cannot refer to it")
        sid = SnapshotId(self._s.new_id("snapshot"))
        fields = {f: getattr(snapshot, f) for f in NewSnapshot.__dataclass_fields__}
        fields["etcd_status"] = copy.deepcopy(dict(snapshot.etcd_status))
        fields["versions"] = copy.deepcopy(dict(snapshot.versions))
        record = SnapshotRecord(id=sid, pinned=False, status=SnapshotState.COMPLETE, deleted_at=None, **fields)
        self._s.snapshots[sid] = record
        return record

    def get_snapshot(self, snapshot_id: int) -> SnapshotRecord:
        try:
            return self._s.snapshots[snapshot_id]
        except KeyError:
            raise errors.SnapshotNotFoundError(
                f"no snapshot with id {snapshot_id} (see `upgrader snapshot list`)") from None

    def list_snapshots(self, cluster: str | None = None, *, include_deleted: bool = False) -> list[SnapshotRecord]:
        if cluster is not None:
            self.get_cluster(cluster)
        found = [s for s in self._s.snapshots.values() if (cluster is None or s.cluster == cluster)
                 and (include_deleted or s.status is not SnapshotState.DELETED)]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    def set_snapshot_pinned(self, snapshot_id: int, pinned: bool) -> SnapshotRecord:
        record = replace(self.get_snapshot(snapshot_id), pinned=pinned)
        self._s.snapshots[snapshot_id] = record
        return record

    def mark_snapshot_deleted(self, snapshot_id: int) -> SnapshotRecord:
        record = replace(self.get_snapshot(snapshot_id), status=SnapshotState.DELETED, deleted_at=self._clock())
        self._s.snapshots[snapshot_id] = record
        return record

    def snapshots_in_use(self, cluster: str) -> set[SnapshotId]:
        self.get_cluster(cluster)
        return {s.id for s in self._s.snapshots.values() if s.cluster == cluster and s.run_id is not None
                and self._run_status(s.run_id) not in (None, *FINAL_RUN_STATUSES)}

    def _run_status(self, run_id: int) -> RunStatus | None:
        run = self._s.runs.get(run_id)
        return run.status if run is not None else self._s.run_statuses.get(run_id)

    # the release catalog
    def save_releases(self, releases: Sequence[Release], *, source: str, fetched_at: datetime) -> None:
        for moment in (fetched_at, *(r.released for r in releases if r.released is not None)):
            if moment.tzinfo is None:
                raise ValueError(f"naive datetime {moment!r} given to the ledger; use an aware UTC time")
        for release in releases:  # times come back in UTC, as the ledger's columns give them
            released = release.released.astimezone(UTC) if release.released is not None else None
            self._s.catalog[release.version] = (replace(release, released=released), source,
                                                fetched_at.astimezone(UTC))

    def stored_catalog(self) -> StoredCatalog | None:
        if not self._s.catalog:
            return None
        _, source, fetched_at = max(self._s.catalog.values(), key=lambda row: (row[2], row[0].version))
        return StoredCatalog(releases=tuple(self._s.catalog[v][0] for v in sorted(self._s.catalog)),
                             fetched_at=fetched_at, source=source)


class InMemoryLedger:
    """The whole ledger in memory; ``unit_of_work()`` hands out transactions over it."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._state = _State()
        self._clock = clock or (lambda: datetime.now(UTC))
        # One transaction at a time, as the SQL ledger serialises writers: two threads' units of work
        # (a run's nodes recording their steps) must not both copy the state and the second commit
        # overwrite the first's writes. Re-entrant: a use case may open one inside another.
        self.lock = threading.RLock()

    def unit_of_work(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)

    def set_run_status(self, run_id: int, status: RunStatus) -> None:
        """A stand-in run with only an id and a status, for tests of snapshots (which ones an unfinished
        run holds) that need no plan; the repository's runs are written with ``create_run``."""
        self._state.run_statuses[run_id] = status


class InMemoryUnitOfWork:
    """A transaction: works on a copy of the ledger's state, which ``commit()`` puts in its place.
    Transactions of different threads take turns (the ledger's lock, from ``with`` to its end)."""

    def __init__(self, ledger: InMemoryLedger) -> None:
        self._ledger = ledger
        self._work: _State | None = None

    @property
    def repo(self) -> InMemoryRepository:
        if self._work is None:
            raise RuntimeError("the unit of work is used outside its `with` block")
        return InMemoryRepository(self._work, clock=self._ledger._clock)

    def __enter__(self) -> Self:
        self._ledger.lock.acquire()
        try:
            self._work = copy.deepcopy(self._ledger._state)
        except BaseException:
            self._ledger.lock.release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._work = None  # anything not committed is dropped
        self._ledger.lock.release()

    def commit(self) -> None:
        if self._work is None:
            raise RuntimeError("the unit of work is used outside its `with` block")
        self._ledger._state = copy.deepcopy(self._work)

    def rollback(self) -> None:
        self._work = copy.deepcopy(self._ledger._state)
