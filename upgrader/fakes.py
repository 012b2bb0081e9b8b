"""In-memory fakes of the ports, shipped in the package so use cases can be tested in milliseconds.

Each fake implements its Protocol in ``upgrader.ports`` and passes the same contract tests as the
real adapter (tests/integration/test_port_contracts.py): same records, same errors and exit codes,
same transaction semantics. They are not mocks: they keep state and enforce the rules.
"""

from __future__ import annotations

import copy
import hashlib
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Self

from upgrader import errors
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
    SkipRecord,
    SnapshotId,
    SnapshotRecord,
    SnapshotState,
)
from upgrader.domain.runs import FINAL_RUN_STATUSES, EventId, FencingToken, ObservationId, PlanId, RunId, RunStatus
from upgrader.ports import CommandResult, EtcdMember, EtcdTls, EtcdToolInfo, SnapshotStatus


@dataclass
class _State:
    clusters: dict[str, ClusterRecord] = field(default_factory=dict)
    observations: list[ObservationRecord] = field(default_factory=list)
    plans: dict[int, PlanRecord] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)
    locks: dict[str, LockRecord] = field(default_factory=dict)
    snapshots: dict[int, SnapshotRecord] = field(default_factory=dict)
    run_statuses: dict[int, RunStatus] = field(default_factory=dict)  # runs are not in this port yet
    next_id: dict[str, int] = field(default_factory=dict)

    def new_id(self, kind: str) -> int:
        self.next_id[kind] = self.next_id.get(kind, 0) + 1
        return self.next_id[kind]


class InMemoryRepository:
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

    def remove_cluster(self, name: str) -> None:
        self.get_cluster(name)
        del self._s.clusters[name]
        self._s.locks.pop(name, None)
        self._s.observations = [o for o in self._s.observations if o.cluster != name]
        self._s.plans = {k: p for k, p in self._s.plans.items() if p.cluster != name}
        self._s.snapshots = {k: v for k, v in self._s.snapshots.items() if v.cluster != name}

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

    def list_events(self, cluster: str | None = None, limit: int = 100) -> list[EventRecord]:
        mine = [e for e in self._s.events if cluster is None or e.cluster == cluster]
        return mine[-limit:] if limit > 0 else []

    # locks
    def acquire_lock(self, *, cluster: str, holder: str, ttl_seconds: float, now: datetime,
                     run_id: int | None = None) -> FencingToken:
        token = FencingToken(self._s.new_id("fencing-token"))  # spent even when refused, as in the ledger
        lease = self._s.locks.get(cluster)
        if lease is not None and lease.expires_at > now and lease.holder != holder:
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
        if snapshot.run_id is not None and snapshot.run_id not in self._s.run_statuses:
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
                and s.run_id in self._s.run_statuses and self._s.run_statuses[s.run_id] not in FINAL_RUN_STATUSES}


class InMemoryLedger:
    """The whole ledger in memory; ``unit_of_work()`` hands out transactions over it."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._state = _State()
        self._clock = clock or (lambda: datetime.now(UTC))

    def unit_of_work(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)

    def set_run_status(self, run_id: int, status: RunStatus) -> None:
        """Stand in for the runs the engine will record: which snapshots an unfinished run holds."""
        self._state.run_statuses[run_id] = status


class InMemoryUnitOfWork:
    """A transaction: works on a copy of the ledger's state, which ``commit()`` puts in its place."""

    def __init__(self, ledger: InMemoryLedger) -> None:
        self._ledger = ledger
        self._work: _State | None = None

    @property
    def repo(self) -> InMemoryRepository:
        if self._work is None:
            raise RuntimeError("the unit of work is used outside its `with` block")
        return InMemoryRepository(self._work, clock=self._ledger._clock)

    def __enter__(self) -> Self:
        self._work = copy.deepcopy(self._ledger._state)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._work = None  # anything not committed is dropped

    def commit(self) -> None:
        if self._work is None:
            raise RuntimeError("the unit of work is used outside its `with` block")
        self._ledger._state = copy.deepcopy(self._work)

    def rollback(self) -> None:
        self._work = copy.deepcopy(self._ledger._state)


class FakeClusterApi:
    """A cluster API that answers with a fixed inventory document, or as unreachable.

    The preflight reads answer what was given: ``nodes`` (API JSON; derived from the inventory when
    not given), ``pods``, ``pdbs``, ``readyz`` (status, body) and ``metrics`` (Prometheus text);
    ``configmaps`` maps (namespace, name) to a ConfigMap's data.
    """

    def __init__(self, inventory: Mapping[str, Any] | None = None, *, unreachable: str | None = None,
                 nodes: Sequence[Mapping[str, Any]] | None = None, pods: Sequence[Mapping[str, Any]] = (),
                 pdbs: Sequence[Mapping[str, Any]] = (), readyz: tuple[int, str] = (200, "readyz check passed\n"),
                 metrics: str = "", configmaps: Mapping[tuple[str, str], Mapping[str, str]] | None = None) -> None:
        self._inventory = copy.deepcopy(dict(inventory)) if inventory is not None else None
        self._unreachable = unreachable
        self.configmaps = {key: dict(data) for key, data in (configmaps or {}).items()}  # (namespace, name) -> data
        self.calls = 0
        self.nodes = [copy.deepcopy(dict(n)) for n in nodes] if nodes is not None else _api_nodes(self._inventory)
        self.pods = [copy.deepcopy(dict(p)) for p in pods]
        self.pdbs = [copy.deepcopy(dict(p)) for p in pdbs]
        self.readyz_answer = readyz
        self.metrics_text = metrics

    def observe_inventory(self) -> dict[str, Any]:
        self.calls += 1
        if self._unreachable is not None or self._inventory is None:
            raise errors.ClusterUnreachableError(self._unreachable or "cluster unreachable")
        return copy.deepcopy(self._inventory)

    def _reach(self) -> None:
        if self._unreachable is not None:
            raise errors.ClusterUnreachableError(self._unreachable)

    def readyz(self) -> tuple[int, str]:
        self._reach()
        return self.readyz_answer

    def list_nodes(self) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy(self.nodes)

    def list_pods(self) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy(self.pods)

    def list_pdbs(self) -> list[dict[str, Any]]:
        self._reach()
        return copy.deepcopy(self.pdbs)

    def metrics(self) -> str:
        self._reach()
        return self.metrics_text

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        if self._unreachable is not None:
            raise errors.ClusterUnreachableError(self._unreachable)
        data = self.configmaps.get((namespace, name))
        return dict(data) if data is not None else None


def _api_nodes(inventory: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Node objects as the API shows them, for the nodes of an inventory document."""
    nodes = []
    for n in (inventory or {}).get("nodes") or []:
        labels = {"kubernetes.io/hostname": n["name"]}
        if n.get("control_plane"):
            labels["node-role.kubernetes.io/control-plane"] = ""
        nodes.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n["name"], "labels": labels},
                      "spec": {"unschedulable": True} if n.get("unschedulable") else {},
                      "status": {"conditions": [{"type": "Ready", "status": "True" if n.get("ready") else "False"}],
                                 "nodeInfo": {"kubeletVersion": n.get("kubelet")}}})
    return nodes


class FakeTransport:
    """A node whose files live in a dict and whose commands are answered by handlers you register.

    ``handlers[argv[0]]`` gets the argv and returns a CommandResult; an unknown program exits 127
    like a shell's "command not found". Every argv run is kept in ``ran``.
    """

    def __init__(self, *, handlers: Mapping[str, Callable[[list[str]], CommandResult]] | None = None,
                 files: Mapping[str, bytes] | None = None, unreachable: bool = False) -> None:
        self.handlers = dict(handlers or {})
        self.files: dict[str, tuple[bytes, int]] = {_node_path(p): (d, 0o644) for p, d in (files or {}).items()}
        self.unreachable = unreachable
        self.ran: list[list[str]] = []

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        self._reach()
        self.ran.append(list(argv))
        handler = self.handlers.get(argv[0]) if argv else None
        if handler is None:
            return CommandResult(127, "", f"{argv[0] if argv else ''}: command not found\n")
        return handler(list(argv))

    def read_file(self, path: str) -> bytes:
        self._reach()
        try:
            return self.files[_node_path(path)][0]
        except KeyError:
            raise errors.FileMissingError(f"cannot read {path}: No such file or directory") from None

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._reach()
        self.files[_node_path(path)] = (bytes(data), mode)

    def _reach(self) -> None:
        if self.unreachable:
            raise errors.NodeUnreachableError("node unreachable (fake)")


def _node_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"node paths are absolute, got {path!r}")
    parts: list[str] = []
    for part in PurePosixPath(path).parts[1:]:
        if part == "..":
            if not parts:
                raise errors.NodePathError(f"node path {path} climbs above the node's / (refused)")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


class FakeClock:
    """Time that moves only when told (or when something sleeps)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 12, 1, tzinfo=UTC)
        self._mono = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


class FakeEtcdTool:
    """The EtcdTool port over an imaginary etcd cluster: members as given, snapshots as files.

    ``save`` writes a deterministic file shaped like a real one (a body padded to 512-byte sectors,
    then the SHA-256 trailer), 0600, holding ``payload``; ``status`` checks the trailer (IntegrityError,
    exit 8, when it does not match) and reads the revision back. ``corrupt(path)`` flips one byte.
    ``tool_version`` older than the cluster's etcd minor makes ``require`` refuse, as the real one does.
    """

    def __init__(self, *, members: Sequence[EtcdMember] | None = None, tool_version: str = "3.5.16",
                 revision: int = 4242, payload: bytes = b"", unreachable: str | None = None) -> None:
        self.etcd_members = list(members) if members is not None else [
            EtcdMember(id=f"{i:016x}", name=f"cp-{i}", peer_urls=(f"https://10.0.0.{i}:2380",),
                       client_urls=(f"https://10.0.0.{i}:2379",), healthy=True, leader=i == 1,
                       db_size=20480, revision=revision, version="3.5.16") for i in (1, 2, 3)]
        self.tool_version = tool_version
        self.revision = revision
        self.payload = payload
        self.unreachable = unreachable
        self.saved: list[tuple[str, Path]] = []
        self.restored: list[dict[str, str]] = []

    def probe(self) -> EtcdToolInfo:
        return EtcdToolInfo(etcdctl_version=self.tool_version, etcdutl_version=None, status_tool="etcdctl",
                            restore_tool="etcdctl", bump_revision=False)

    def require(self, etcd_version: str | None) -> EtcdToolInfo:
        if etcd_version is not None and _minor(self.tool_version) < _minor(etcd_version):
            need = ".".join(etcd_version.split(".")[:2])
            raise errors.EtcdToolError(f"etcdctl {self.tool_version} is older than the cluster's etcd "
                                       f"{etcd_version}: install etcdctl {need} or newer")
        return self.probe()

    def members(self, endpoints: Sequence[str], tls: EtcdTls | None, timeout: float = 10.0) -> list[EtcdMember]:
        if self.unreachable is not None:
            raise errors.ClusterUnreachableError(self.unreachable)
        return list(self.etcd_members)

    def save(self, *, endpoint: str, tls: EtcdTls | None, path: Path, timeout: float = 300.0) -> None:
        if self.unreachable is not None:
            raise errors.ClusterUnreachableError(f"snapshot save from {endpoint} failed: {self.unreachable}")
        body = f"fake-etcd-snapshot revision={self.revision}\n".encode() + self.payload
        body += b"\0" * (-len(body) % 512)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(body + hashlib.sha256(body).digest())
        except OSError as e:
            raise errors.SnapshotStoreError(f"cannot write the snapshot to {path}: {e.strerror}") from e
        self.saved.append((endpoint, path))

    def status(self, path: Path) -> SnapshotStatus:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise errors.IntegrityError(f"snapshot {path}: {e.strerror}") from e
        if len(data) < 512 + 32 or len(data) % 512 != 32:  # upgrader.etcd.integrity.check_trailer's rule
            raise errors.IntegrityError(f"snapshot {path}: {len(data)} bytes is not a database image plus its "
                                        "SHA-256 trailer (truncated, or not a `snapshot save` file)")
        body, trailer = data[:-32], data[-32:]
        if hashlib.sha256(body).digest() != trailer:
            raise errors.IntegrityError(f"snapshot {path}: its SHA-256 trailer does not match its contents")
        first = body.split(b"\n", 1)[0].decode(errors="replace")
        revision = int(first.rsplit("=", 1)[1]) if first.startswith("fake-etcd-snapshot revision=") else 0
        return SnapshotStatus(hash=zlib.crc32(body), revision=revision, total_keys=body.count(b"\n"),
                              total_size=len(data))

    def restore(self, *, path: str, name: str, data_dir: str, initial_cluster: str, token: str,
                peer_url: str) -> None:
        self.restored.append({"path": path, "name": name, "data_dir": data_dir})

    @staticmethod
    def corrupt(path: Path, offset: int = 10) -> None:
        """Flip one byte of a file, as a bad disk would."""
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0xFF]))


def _minor(version: str) -> tuple[int, int]:
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])
