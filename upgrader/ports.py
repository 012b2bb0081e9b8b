"""The ports: what the services (and the coming engine) need from the outside world, as Protocols.

Adapters implement them (named by technology: ``SqlUnitOfWork``, ``KubeClusterApi``,
``LocalTransport``, ``SandboxTransport``); ``upgrader.fakes`` has an in-memory fake of each, held
to the same contract tests as the real adapter, so a use case can be tested in milliseconds.
services/wiring.py is the only place that chooses and builds adapters.

- :class:`UnitOfWork` / :class:`Repository`: the ledger, one transaction per use case.
- :class:`ClusterApi`: a cluster's Kubernetes API.
- :class:`NodeTransport`: commands and files on one node. Node paths are always written as on a
  real node (``/etc/kubernetes/...``); a :class:`NodeLayout` maps them onto the filesystem that
  really holds them.
- :class:`EtcdTool` and :class:`SnapshotStore`: etcd snapshots (their adapters come with the
  snapshot work; the shapes follow DOMAIN.md, "etcd snapshots").
- :class:`Clock`: time and sleeping, so nothing waits on the wall clock in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from upgrader.domain.catalog import Release, StoredCatalog
from upgrader.domain.records import (
    ClusterRecord,
    EventRecord,
    LockRecord,
    NewObservation,
    NewSnapshot,
    ObservationRecord,
    PlanRecord,
    RunRecord,
    RunStepRecord,
    SkipRecord,
    SnapshotId,
    SnapshotRecord,
)
from upgrader.domain.runs import EventId, FencingToken, ObservationId, PlanId, RunStatus, StepStatus
from upgrader.node_layout import NodeLayout as NodeLayout  # a port's shape, in a module of its own (see there)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did on a node: its exit code and its output, passed through untouched."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class NodeTransport(Protocol):
    """Runs commands and moves files on one node."""

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        """Run argv (no shell) on the node; a non-zero exit is a result, not an exception."""
        ...

    def read_file(self, path: str) -> bytes:
        """The bytes of a node file; raises TransportError when it cannot be read."""
        ...

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Atomically replace a node file with data and the given permission bits."""
        ...


class PortForwarder(Protocol):
    """A transport that can also tunnel a TCP port (SshTransport): how the etcd tools reach a member's
    client port that is not reachable directly. Check with ``hasattr(transport, "forward")``."""

    def forward(self, remote_host: str, remote_port: int) -> tuple[str, int]:
        """A local (host, port) that reaches ``remote_host:remote_port`` as the node sees it, until
        the transport closes."""
        ...


class LocalCopier(Protocol):
    """A transport that can also stream a node file into a local file (SshTransport): how a large
    file (an etcd snapshot) comes back without being held in memory. Check with
    ``hasattr(transport, "copy_to_local")``; :meth:`NodeTransport.read_file` is the fallback."""

    def copy_to_local(self, path: str, local: Path, timeout: float) -> int:
        """Copy the node's ``path`` to ``local`` (0600, replaced only once whole); its size in bytes."""
        ...


class Repository(Protocol):
    """The ledger's records, read and written inside one :class:`UnitOfWork`."""

    def add_cluster(self, *, name: str, kubeconfig: str, context: str | None,
                    transport: Mapping[str, Any] | None, actor: str) -> ClusterRecord: ...

    def get_cluster(self, name: str) -> ClusterRecord:
        """The cluster; ClusterNotFoundError (exit 2) when it is not registered."""
        ...

    def list_clusters(self) -> list[ClusterRecord]: ...

    def set_cluster_transport(self, name: str, transport: Mapping[str, Any] | None) -> ClusterRecord:
        """Replace how the cluster's nodes are reached (upgrader.domain.node_access); None clears it."""
        ...

    def set_cluster_schedule(self, name: str, policy: Mapping[str, Any] | None) -> ClusterRecord:
        """Replace the cluster's schedule policy (upgrader.domain.schedule); None unschedules it."""
        ...

    def set_cluster_playbooks(self, name: str, directory: str | None) -> ClusterRecord:
        """Replace the directory of the upgrade playbooks the cluster's plans expand; None: the shipped ones."""
        ...

    def recent_step_seconds(self, limit: int = 2000) -> dict[str, list[float]]:
        """Seconds the newest ``limit`` succeeded steps took, by action, over every cluster."""
        ...

    def remove_cluster(self, name: str) -> None: ...

    def add_skip(self, *, cluster: str, version: str, reason: str, actor: str) -> SkipRecord: ...

    def remove_skip(self, *, cluster: str, version: str) -> bool: ...

    def record_observation(self, *, cluster: str, observed_at: datetime, fingerprint: str, source: str,
                           inventory: Mapping[str, Any]) -> ObservationId: ...

    def latest_observation(self, cluster: str) -> ObservationRecord | None: ...

    def get_observation(self, observation_id: int) -> ObservationRecord | None:
        """The observation with that id (a plan's source), None when it is gone."""
        ...

    def save_plan(self, *, cluster: str, observation: NewObservation | None, created_by: str, target: str,
                  strategy: Mapping[str, Any], skipped_versions: Sequence[str], source_fingerprint: str | None,
                  document: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> PlanId:
        """The plan, and the observation it was made from (recorded with it), in one write."""
        ...

    def get_plan(self, plan_id: int) -> PlanRecord:
        """The plan; PlanNotFoundError (exit 2) when there is none with that id."""
        ...

    def list_plans(self, cluster: str | None = None) -> list[PlanRecord]: ...

    def append_event(self, *, kind: str, actor: str, host: str, command_line: str, cluster: str | None = None,
                     run_id: int | None = None, data: Mapping[str, Any] | None = None) -> EventId: ...

    def list_events(self, cluster: str | None = None, limit: int = 100, *, run_id: int | None = None,
                    kind: str | None = None) -> list[EventRecord]:
        """The latest ``limit`` events, oldest first; only those of ``run_id`` and of ``kind`` when given."""
        ...

    def acquire_lock(self, *, cluster: str, holder: str, ttl_seconds: float, now: datetime,
                     run_id: int | None = None, take_over: int | None = None) -> FencingToken:
        """A lease on the cluster; RunLockedError (exit 7) while another holder's lease is valid.
        ``take_over``: the token of a lease whose holder is known dead (a process on this host that
        no longer exists); that lease is taken even before it expires, and only that one."""
        ...

    def renew_lock(self, *, cluster: str, token: int, ttl_seconds: float, now: datetime) -> None:
        """Extend this holder's lease; LockLostError when another holder has taken it over."""
        ...

    def release_lock(self, *, cluster: str, token: int) -> bool: ...

    def get_lock(self, cluster: str) -> LockRecord | None: ...

    def add_snapshot(self, snapshot: NewSnapshot) -> SnapshotRecord:
        """Record a snapshot whose files are stored and verified (``complete``, not pinned)."""
        ...

    def get_snapshot(self, snapshot_id: int) -> SnapshotRecord:
        """The snapshot (also a deleted one); SnapshotNotFoundError (exit 2) when there is none with that id."""
        ...

    def list_snapshots(self, cluster: str | None = None, *, include_deleted: bool = False) -> list[SnapshotRecord]:
        """Oldest first (created_at, then id)."""
        ...

    def set_snapshot_pinned(self, snapshot_id: int, pinned: bool) -> SnapshotRecord: ...

    def mark_snapshot_deleted(self, snapshot_id: int) -> SnapshotRecord:
        """Its files are gone: status ``deleted``, ``deleted_at`` now; the row stays for the audit trail."""
        ...

    def snapshots_in_use(self, cluster: str) -> set[SnapshotId]:
        """Ids of the cluster's snapshots that a run not yet in a final status refers to."""
        ...

    # Runs. Every write below that takes ``token`` first checks that the cluster's lease is still held
    # with that fencing token and that the run carries it; otherwise LockLostError (exit 7) and nothing
    # is written: a run whose lease was taken over stops instead of racing.
    def create_run(self, *, plan_id: int, started_by: str, host: str, command_line: str, token: int,
                   options: Mapping[str, Any], rollback_of: int | None = None) -> RunRecord:
        """A ``running`` run of the plan (started now) with one ``pending`` step per plan step."""
        ...

    def get_run(self, run_id: int) -> RunRecord:
        """The run with its steps; RunNotFoundError (exit 2) when there is none with that id."""
        ...

    def list_runs(self, cluster: str | None = None, *, plan_id: int | None = None) -> list[RunRecord]:
        """Newest first."""
        ...

    def claim_run(self, run_id: int, *, token: int) -> RunRecord:
        """``resume``: the run (interrupted, or running with a dead holder) now carries ``token`` (a lease
        just acquired for it) and is ``running`` again."""
        ...

    def set_run_status(self, run_id: int, status: RunStatus, *, token: int,
                       outcome: Mapping[str, Any] | None = None) -> RunRecord:
        """A transition domain.runs allows (InvalidTransitionError otherwise); ``finished_at`` is set
        for every status but running; ``outcome`` replaces the stored one when given."""
        ...

    def start_step(self, run_id: int, n: int, *, token: int) -> RunStepRecord:
        """The step is ``running``: attempts + 1, started_at now, finished_at/error cleared."""
        ...

    def finish_step(self, run_id: int, n: int, status: StepStatus, *, token: int,
                    outputs: Mapping[str, Any] | None = None, error: str | None = None) -> RunStepRecord:
        """``succeeded``, ``failed`` or ``skipped`` (from pending), with finished_at now."""
        ...

    # The release catalog: the upstream listing `catalog refresh` read (upgrader.web.releases).
    def save_releases(self, releases: Sequence[Release], *, source: str, fetched_at: datetime) -> None:
        """Store (upsert) these releases with their dates, from ``source`` at ``fetched_at``; versions stored
        before and not named again stay. Safe when two refreshes run at once."""
        ...

    def stored_catalog(self) -> StoredCatalog | None:
        """Every stored release, oldest first, with the latest refresh's time and source; None before any."""
        ...


class UnitOfWork(Protocol):
    """One transaction around a use case: leaving the ``with`` block without ``commit()`` rolls back."""

    @property
    def repo(self) -> Repository:
        """The ledger's records, valid inside the ``with`` block."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class ClusterApi(Protocol):
    """A cluster's Kubernetes API, as the use cases need it."""

    def observe_inventory(self) -> dict[str, Any]:
        """The nodes' and control-plane components' versions, as an inventory document
        (what ``plan --state`` takes); ClusterUnreachableError when the API cannot be reached.
        It may carry the API's observed facts too (taints, internal_ip, os_image, container_runtime,
        kernel per node; kubeadm_config), never the ones from nodes or etcd."""
        ...

    # Reads for preflight and health gates: JSON as the API returns it (camelCase), every call
    # raising ClusterUnreachableError when the API cannot be reached.
    def readyz(self) -> tuple[int, str]:
        """``GET /readyz?verbose``: the status code and the body (200 is ready; 500 names the failing checks)."""
        ...

    def get_path(self, path: str, *, timeout: float) -> tuple[int, str]:
        """``GET path`` on the API (a playbook's http check): the status and body, whatever the status;
        ClusterUnreachableError when the API cannot be reached within ``timeout`` seconds."""
        ...

    def list_nodes(self) -> list[dict[str, Any]]: ...

    def list_pods(self) -> list[dict[str, Any]]:
        """Every pod in every namespace."""
        ...

    def list_pdbs(self) -> list[dict[str, Any]]:
        """Every policy/v1 PodDisruptionBudget, with its status."""
        ...

    def metrics(self) -> str:
        """``GET /metrics`` of the apiserver that answers, in the Prometheus text format."""
        ...

    def get_node(self, name: str) -> dict[str, Any] | None:
        """The Node object, None when there is no such node."""
        ...

    def list_control_plane_pods(self) -> list[dict[str, Any]]:
        """kube-system pods labelled ``tier=control-plane`` (kubeadm's static pods' mirror pods)."""
        ...

    def list_node_pods(self, node: str) -> list[dict[str, Any]]:
        """Every pod bound to ``node`` (``fieldSelector=spec.nodeName=NODE``)."""
        ...

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the Node (cordon: ``{"spec": {"unschedulable": true}}``; an annotation
        set to None is removed); the patched Node. NodeNotFoundError when there is no such node."""
        ...

    def evict_pod(self, namespace: str, name: str) -> tuple[int, str]:
        """POST a policy/v1 Eviction: (HTTP status, message). 200/201 evicted, 404 already gone, 429 refused
        by a PodDisruptionBudget (retry later); other statuses as the API answered."""
        ...

    def delete_pod(self, namespace: str, name: str, *, grace_seconds: int = 0) -> bool:
        """Delete a pod outright (``--force-drain`` only); False when it was already gone."""
        ...

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's data (kube-system/kubeadm-config holds the ClusterConfiguration), None when there is
        no such ConfigMap; ClusterUnreachableError when the API cannot be reached."""
        ...

    def server_version(self) -> dict[str, Any]:
        """``GET /version`` of the apiserver that answers: gitVersion, and from v1.33 emulationMajor/
        emulationMinor (KEP-4330; absent when omitted)."""
        ...

    def patch_configmap(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Set these keys of a ConfigMap's data (a JSON merge patch: the other keys stay); NotFound and
        refusals raise like every write."""
        ...


@dataclass(frozen=True, slots=True)
class SnapshotStatus:
    """What the etcd tool says of a snapshot file (compare hash and revision, never totalKey across
    tool versions). ``version`` is the etcd storage version etcdutl 3.6 reports, else None."""

    hash: int
    revision: int
    total_keys: int
    total_size: int
    version: str | None = None


@dataclass(frozen=True, slots=True)
class KeyListing:
    """Every key of an etcd with its mod revision, read at ``revision`` (keys only: never a value)."""

    revision: int
    keys: Mapping[str, int]  # key -> mod_revision


@dataclass(frozen=True, slots=True)
class EtcdTls:
    """Client TLS files for etcd, as local paths (a private 0700 temp dir; never logged). kubeadm's are
    /etc/kubernetes/pki/etcd/ca.crt and healthcheck-client.crt/.key (or apiserver-etcd-client)."""

    cacert: Path
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class EtcdMember:
    """One etcd member as ``member list`` and ``endpoint status/health`` see it.

    ``id`` is the member id in hex. The status fields are None when the member did not answer;
    ``error`` then says why (one line)."""

    id: str
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    healthy: bool | None = None
    leader: bool | None = None
    db_size: int | None = None
    revision: int | None = None
    version: str | None = None
    error: str | None = None
    endpoint: str | None = None  # the endpoint asked whose status answered as this member (reaches exactly it)


@dataclass(frozen=True, slots=True)
class EtcdToolInfo:
    """What the etcd client tools on this host can do, found by probing their output (DOMAIN.md:
    etcd 3.6's etcdctl prints help and exits 0 for ``snapshot status``), never by version."""

    etcdctl_version: str | None
    etcdutl_version: str | None
    status_tool: str | None  # "etcdutl" or "etcdctl": who can read a snapshot's status
    restore_tool: str | None  # "etcdutl" or "etcdctl"
    bump_revision: bool  # restore has --bump-revision/--mark-compacted


class EtcdTool(Protocol):
    """etcdctl/etcdutl on the orchestrator's host (or on a node), capability-probed."""

    def probe(self) -> EtcdToolInfo: ...

    def require(self, etcd_version: str | None) -> EtcdToolInfo:
        """The probe, or EtcdToolError (exit 2) naming the tool needed when etcdctl is missing or
        older than the cluster's etcd minor (``etcd_version`` such as "3.5.16"; None skips that check)."""
        ...

    def members(self, endpoints: Sequence[str], tls: EtcdTls | None, timeout: float = 10.0) -> list[EtcdMember]:
        """``member list`` from the first endpoint that answers, each member's ``endpoint status``
        and ``endpoint health`` merged in; ClusterUnreachableError when no endpoint answers."""
        ...

    def save(self, *, endpoint: str, tls: EtcdTls | None, path: Path, timeout: float = 300.0) -> None:
        """``snapshot save`` from exactly this endpoint to ``path`` (created 0600)."""
        ...

    def status(self, path: Path) -> SnapshotStatus:
        """The snapshot's own status and integrity (IntegrityError, exit 8, when it is corrupt)."""
        ...

    def restore(self, *, path: str, name: str, data_dir: str, initial_cluster: str, token: str,
                peer_url: str) -> None: ...

    def keys(self, endpoints: Sequence[str], tls: EtcdTls | None, timeout: float = 120.0) -> KeyListing:
        """Every key with its mod revision (``get "" --prefix --keys-only -w json``), never a value;
        ClusterUnreachableError when no endpoint answers."""
        ...


class ScratchEtcd(Protocol):
    """A snapshot restored into a private one-member etcd beside the orchestrator (never into a cluster),
    running for as long as the context that made it is open."""

    @property
    def endpoint(self) -> str: ...

    @property
    def restore_tool(self) -> str:
        """"etcdutl" or "etcdctl": what restored it."""
        ...

    @property
    def bumped_by(self) -> int:
        """The revision bump the restore applied (0 when the tool has no ``--bump-revision``)."""
        ...

    def keys(self, timeout: float = 300.0) -> KeyListing:
        """Its keys and mod revisions (never a value), and its revision."""
        ...

    def hashkv(self, revision: int, timeout: float = 60.0) -> int:
        """``endpoint hashkv --rev=REVISION``: the hash of its key space up to that revision."""
        ...


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A file in the snapshot store (the etcd file or an artefact), as it was written."""

    path: Path
    size: int
    sha256: str


class SnapshotStore(Protocol):
    """Where snapshot files live beside the orchestrator: mode 0600 in 0700 directories, checksummed,
    never logged. One directory per snapshot under ``ROOT/CLUSTER/``; the etcd file is written under a
    temp name (:meth:`partial_path`) and renamed by :meth:`finish` only once it is verified. Every
    failure to write (not writable, disk full) is a SnapshotStoreError (exit 2) with the temp files gone.
    """

    @property
    def root(self) -> Path: ...

    def prepare(self, *, cluster: str, name: str) -> Path:
        """A new, empty snapshot directory (0700), after checking the store is writable."""
        ...

    def partial_path(self, directory: Path) -> Path:
        """The temp name the etcd tool writes to, inside ``directory``."""
        ...

    def finish(self, partial: Path) -> StoredSnapshot:
        """sha256 and size of a verified partial file, made 0600, synced, renamed to its final name."""
        ...

    def put_file(self, directory: Path, name: str, data: bytes) -> StoredSnapshot:
        """An artefact file (0600), written atomically."""
        ...

    def check(self, stored: StoredSnapshot) -> str | None:
        """None when the file is there with its size and sha256; else what is wrong, in one line."""
        ...

    def present(self, stored: StoredSnapshot) -> bool:
        """The file is there with its recorded size (a cheap look: no checksum)."""
        ...

    def discard(self, directory: Path) -> None:
        """Remove a snapshot directory and everything in it (a failed create, or a prune)."""
        ...

    def free_bytes(self) -> int:
        """Bytes free for an unprivileged writer where the store is (or would be created)."""
        ...

    def put(self, *, cluster: str, source: Path) -> StoredSnapshot:
        """Copy an existing etcd snapshot file into a new snapshot directory (prepare + finish)."""
        ...

    def verify(self, snapshot: StoredSnapshot) -> bool:
        """``check(snapshot) is None``."""
        ...


class Clock(Protocol):
    """Time and sleeping, injected so tests never wait on the wall clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...
