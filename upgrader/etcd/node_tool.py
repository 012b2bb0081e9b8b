"""NodeEtcdTool: the etcd client tools of a control-plane node, run through its NodeTransport.

The per-cluster option for hosts that cannot run etcdctl themselves (transport settings
``"etcd_tools": "node"``). The node's etcdctl talks to its own member at 127.0.0.1:2379 with the
node's certificate paths; a snapshot is saved in a private directory on the node, read back over
the transport into the local file (0600), and removed from the node. A saved file is checked here,
with this host's tools when it has them (the node's file is gone by then).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from upgrader.errors import SnapshotStoreError, TransportError
from upgrader.etcd import parsing
from upgrader.etcd.tool import EtcdctlTool
from upgrader.files import atomic_write
from upgrader.ports import EtcdTls, NodeTransport, SnapshotStatus

NODE_DIR = "/var/lib/upgrader/etcd-snapshots"  # on the node: 0700, emptied after each save
NODE_TLS = EtcdTls(cacert=Path("/etc/kubernetes/pki/etcd/ca.crt"),
                   cert=Path("/etc/kubernetes/pki/etcd/healthcheck-client.crt"),
                   key=Path("/etc/kubernetes/pki/etcd/healthcheck-client.key"))
NODE_ENDPOINT = "https://127.0.0.1:2379"


class NodeEtcdTool(EtcdctlTool):
    """etcdctl on a node; ``status`` of a local file goes to ``host_tool`` (this host's tools)."""

    def __init__(self, transport: NodeTransport, *, host_tool: EtcdctlTool | None = None,
                 etcdctl: str = "etcdctl") -> None:
        super().__init__(etcdctl=etcdctl, etcdutl="etcdutl", runner=transport.run)
        self._transport = transport
        self._host = host_tool

    def save(self, *, endpoint: str, tls: EtcdTls | None, path: Path, timeout: float = 300.0) -> None:
        remote = f"{NODE_DIR}/{uuid.uuid4().hex}.db"
        made = self._transport.run(["mkdir", "-p", "-m", "0700", NODE_DIR], 30)
        if not made.ok:
            raise SnapshotStoreError(f"cannot make {NODE_DIR} on the node: {parsing.last_line(made.stderr)}")
        try:
            super().save(endpoint=endpoint, tls=tls, path=Path(remote), timeout=timeout)
            data = self._transport.read_file(remote)
        finally:
            self._transport.run(["rm", "-f", remote, remote + ".part"], 30)
        try:
            atomic_write(path, data, 0o600)
        except OSError as e:
            raise SnapshotStoreError(f"cannot write the snapshot to {path}: {e.strerror}") from e

    def status(self, path: Path) -> SnapshotStatus:
        if self._host is None:
            raise TransportError("a snapshot read back from a node needs this host's etcd tools to check it")
        return self._host.status(path)
