"""The composition root: the one place where adapters are chosen and built.

The CLI makes one :class:`AppContext` per invocation (settings: flag > UPGRADER_* environment
variable > default) and hands it to the services, which ask it for ports, never for adapters:
``unit_of_work()`` (the SQL ledger), ``cluster_api(cluster)`` (the official kubernetes client),
``transport(cluster, node)`` (ssh, sandbox or local) and ``clock``. Unit tests build an
AppContext from ``upgrader.fakes`` instead, and the same use cases run in milliseconds.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upgrader.domain.records import ClusterRecord
from upgrader.domain.text import excerpt
from upgrader.errors import UsageError
from upgrader.ledger.busy import DEFAULT_BUSY_TIMEOUT
from upgrader.ports import (
    Clock,
    ClusterApi,
    EtcdTool,
    NodeLayout,
    NodeTransport,
    ScratchEtcd,
    SnapshotStore,
    UnitOfWork,
)

if TYPE_CHECKING:
    from upgrader.cluster.observe import KubeClusterApi
    from upgrader.ledger.db import Ledger
    from upgrader.services.etcd_access import EtcdSession


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, for the audit trail. The command line is kept with its secrets hidden
    (``--db postgresql://ops:***@db/ledger``): every event in the shared ledger carries it."""

    user: str
    host: str
    command_line: str

    @classmethod
    def current(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        from upgrader.domain.redaction import redact_argv  # here: --help and --version never need it

        command_line = shlex.join(["upgrader", *redact_argv(sys.argv[1:])])
        return cls(user=user, host=socket.gethostname(), command_line=command_line)


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class AppContext:
    """What every use case needs: the ports, and who is acting. The ledger opens lazily, on first use.

    ``unit_of_work_factory`` and ``cluster_api_factory`` replace the real adapters (tests pass the
    fakes); left as None, the SQL ledger at ``db`` and the kubernetes client are used.
    """

    db: str | None = None
    debug: bool = False
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT  # seconds a transaction waits for another process's lock
    actor: Actor = field(default_factory=Actor.current)
    clock: Clock = field(default_factory=SystemClock)
    unit_of_work_factory: Callable[[], UnitOfWork] | None = None
    cluster_api_factory: Callable[[ClusterRecord], ClusterApi] | None = None
    transport_factory: Callable[[ClusterRecord, str], NodeTransport] | None = None
    etcd_tool_factory: Callable[[], EtcdTool] | None = None
    snapshot_store_factory: Callable[[Path], SnapshotStore] | None = None
    # Replaces etcd access as a whole (tests): etcd_session() yields what this opens, when set.
    etcd_session_factory: Callable[[ClusterRecord, Mapping[str, Any] | None],
                                   AbstractContextManager[EtcdSession]] | None = None
    # Replaces the scratch etcd a snapshot is restored into (tests): (snapshot file, its etcd version) -> context.
    scratch_etcd_factory: Callable[[Path, str | None], AbstractContextManager[ScratchEtcd]] | None = None
    accept_new_host_keys: bool = False  # SSH: trust a node's first key (an explicit opt-in, recorded as an event)
    ssh_connect_timeout: float = 5.0  # seconds to reach a node's port (ssh -o ConnectTimeout; an option overrides)
    snapshot_dir: Path | None = None  # where snapshot files go (--store > UPGRADER_SNAPSHOT_DIR > the data dir)
    _ledger: Ledger | None = None
    _transports: dict[tuple[str, str], NodeTransport] = field(default_factory=dict)
    _apis: dict[tuple[str, str, str | None], KubeClusterApi] = field(default_factory=dict)

    def unit_of_work(self) -> UnitOfWork:
        if self.unit_of_work_factory is not None:
            return self.unit_of_work_factory()
        return self.ledger().unit_of_work()

    def ledger(self) -> Ledger:
        """The SQL ledger itself, for what only it can do (schema migrations)."""
        if self._ledger is None:
            from upgrader.ledger.db import open_ledger, resolve_url

            self._ledger = open_ledger(resolve_url(self.db, os.environ), busy_timeout=self.busy_timeout)
        return self._ledger

    def cluster_api(self, cluster: ClusterRecord) -> ClusterApi:
        if self.cluster_api_factory is not None:
            return self.cluster_api_factory(cluster)
        key = (cluster.name, cluster.kubeconfig, cluster.context)
        cached = self._apis.get(key)
        if cached is None:  # one client per cluster and command: credentials are made once
            from upgrader.cluster.observe import KubeClusterApi

            cached = self._apis[key] = KubeClusterApi(cluster=cluster.name, kubeconfig=cluster.kubeconfig,
                                                      context=cluster.context)
        return cached

    def transport(self, cluster: ClusterRecord, node: str,
                  inventory: Mapping[str, Any] | None = None) -> NodeTransport:
        """How to reach ``node``: what the ledger keeps for its cluster (upgrader.domain.node_access).
        ``{"kind": "sandbox", "dir": ...}`` (`sandbox up` registers it), ``{"kind": "local"}`` (this
        machine) or SSH, the default: one multiplexed connection per node, kept until :meth:`close`.

        An SSH node's address is the one set for it, else its InternalIP in ``inventory`` (when
        given) or in the latest stored observation, else its name. Reading the observation opens a
        unit of work: a caller inside one passes ``inventory`` (or sets the address)."""
        if self.transport_factory is not None:
            return self.transport_factory(cluster, node)
        settings = dict(cluster.transport or {})
        kind = settings.get("kind", "ssh")
        if kind == "sandbox":
            return self.sandbox_transport(Path(str(settings["dir"])), node)
        if kind == "local":
            from upgrader.nodes.local import LocalTransport

            return LocalTransport(NodeLayout(Path(str(settings.get("root", "/")))))
        if kind != "ssh":
            raise UsageError(f"cluster {cluster.name}: unknown node transport kind {excerpt(kind)} "
                             "(known: ssh, local, sandbox)")
        cached = self._transports.get((cluster.name, node))
        if cached is not None:
            return cached
        from upgrader.domain.node_access import ssh_target
        from upgrader.nodes.ssh import SshTransport

        own = (settings.get("nodes") or {}).get(node) or {}
        ip = None if "address" in own else self._internal_ip(cluster.name, node, inventory)
        transport = SshTransport(ssh_target(settings, node, ip), node=node, cluster=cluster.name,
                                 accept_new_host_keys=self.accept_new_host_keys,
                                 connect_timeout=self.ssh_connect_timeout)
        self._transports[(cluster.name, node)] = transport
        return transport

    def _internal_ip(self, cluster: str, node: str, inventory: Mapping[str, Any] | None) -> str | None:
        if inventory is None:
            with self.unit_of_work() as uow:
                latest = uow.repo.latest_observation(cluster)
            inventory = latest.inventory if latest is not None else {}
        for entry in inventory.get("nodes") or ():
            if isinstance(entry, Mapping) and entry.get("name") == node:
                ip = entry.get("internal_ip")
                return ip if isinstance(ip, str) and ip else None
        return None

    def etcd_tool(self) -> EtcdTool:
        """The etcd client tools on this host (etcdctl, etcdutl), capability-probed."""
        if self.etcd_tool_factory is not None:
            return self.etcd_tool_factory()
        from upgrader.etcd.tool import EtcdctlTool

        return EtcdctlTool()

    def scratch_etcd(self, snapshot: Path, *, snapshot_etcd: str | None) -> AbstractContextManager[ScratchEtcd]:
        """``snapshot`` restored into a scratch etcd beside the orchestrator (this host's etcd tools and
        server); EtcdToolError (exit 2) naming what to install when they cannot do it."""
        if self.scratch_etcd_factory is not None:
            return self.scratch_etcd_factory(snapshot, snapshot_etcd)
        from upgrader.errors import EtcdToolError
        from upgrader.etcd.scratch import scratch_etcd
        from upgrader.etcd.tool import EtcdctlTool

        tool = self.etcd_tool()
        if not isinstance(tool, EtcdctlTool):
            raise EtcdToolError("restoring a snapshot beside the orchestrator needs this host's etcdctl or etcdutl "
                                "and etcd server: install them (Debian's etcd-client and etcd-server)")
        return scratch_etcd(tool, snapshot, snapshot_etcd=snapshot_etcd)

    def snapshot_store(self, directory: Path | None = None) -> SnapshotStore:
        """The snapshot store at ``directory`` (default: ``snapshot_dir``, else the data dir's snapshots/)."""
        chosen = directory or self.snapshot_dir or default_snapshot_dir()
        if self.snapshot_store_factory is not None:
            return self.snapshot_store_factory(chosen)
        from upgrader.etcd.store import DirectorySnapshotStore

        return DirectorySnapshotStore(chosen)

    def sandbox_transport(self, directory: Path, node: str) -> NodeTransport:
        """A sandbox node, reached as ssh reaches a real one (also for sandboxes not in the ledger)."""
        from upgrader.sandbox import SandboxTransport

        return SandboxTransport(directory, node)

    def close(self) -> None:
        for api in self._apis.values():
            api.close()
        self._apis.clear()
        for transport in self._transports.values():
            close = getattr(transport, "close", None)
            if close is not None:
                close()
        self._transports.clear()
        if self._ledger is not None:
            self._ledger.engine.dispose()
            self._ledger = None


def default_snapshot_dir() -> Path:
    """``$UPGRADER_SNAPSHOT_DIR``, else ``$XDG_DATA_HOME/upgrader/snapshots`` (~/.local/share/...)."""
    explicit = os.environ.get("UPGRADER_SNAPSHOT_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "upgrader" / "snapshots"
