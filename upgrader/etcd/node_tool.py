"""NodeEtcdTool: the etcd client tools of a control-plane node, run through its NodeTransport.

The per-cluster option for hosts that cannot run etcdctl themselves (``cluster set --etcd-tools
node``, stored as ``"etcd_tools": "node"``). The node's etcdctl talks to its own member at
127.0.0.1:2379 with the node's certificate paths. A snapshot is saved in a private directory on
the node and checked there (``snapshot status -w json`` with the node's etcdutl, else its
etcdctl); then it is copied back: streamed into the local file (0600) when the transport can
(``copy_to_local``, as SshTransport does), else read into memory and written; the node's copy is
removed either way. ``status`` of that local file needs no tool on this host: the SHA-256 trailer
is checked here (upgrader/etcd/integrity.py) and must match the node file's trailer, which ties
the file to the status the node reported. Any other file goes to this host's tools.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from upgrader.errors import IntegrityError, SnapshotStoreError, TransportError
from upgrader.etcd import parsing
from upgrader.etcd.integrity import TRAILER, check_trailer
from upgrader.etcd.tool import EtcdctlTool
from upgrader.files import atomic_write
from upgrader.ports import EtcdTls, NodeTransport, SnapshotStatus

NODE_DIR = "/var/lib/upgrader/etcd-snapshots"  # on the node: 0700, emptied after each save
NODE_TLS = EtcdTls(cacert=Path("/etc/kubernetes/pki/etcd/ca.crt"),
                   cert=Path("/etc/kubernetes/pki/etcd/healthcheck-client.crt"),
                   key=Path("/etc/kubernetes/pki/etcd/healthcheck-client.key"))
NODE_ENDPOINT = "https://127.0.0.1:2379"


class NodeEtcdTool(EtcdctlTool):
    """etcdctl on a node; ``status`` of a file it saved is the node's own answer, once the local
    copy's trailer checks out; any other file goes to ``host_tool`` (this host's tools)."""

    def __init__(self, transport: NodeTransport, *, host_tool: EtcdctlTool | None = None,
                 etcdctl: str = "etcdctl", node_dir: str = NODE_DIR) -> None:
        super().__init__(etcdctl=etcdctl, etcdutl="etcdutl", runner=transport.run)
        self._transport = transport
        self._host = host_tool
        self._node_dir = node_dir
        self._checked: dict[Path, tuple[str, SnapshotStatus]] = {}  # local file -> (trailer, node's status)

    def save(self, *, endpoint: str, tls: EtcdTls | None, path: Path, timeout: float = 300.0) -> None:
        remote = f"{self._node_dir}/{uuid.uuid4().hex}.db"
        made = self._transport.run(["mkdir", "-p", "-m", "0700", self._node_dir], 30)
        if not made.ok:
            raise SnapshotStoreError(f"cannot make {self._node_dir} on the node: {parsing.last_line(made.stderr)}")
        self._checked.pop(path, None)
        try:
            super().save(endpoint=endpoint, tls=tls, path=Path(remote), timeout=timeout)
            status = self._node_status(remote)  # before the copy: a bad image is never copied back
            trailer = self._node_trailer(remote)
            self._copy_back(remote, path, timeout)
        finally:
            self._transport.run(["rm", "-f", remote, remote + ".part"], 30)
        self._checked[path] = (trailer, status)

    def status(self, path: Path) -> SnapshotStatus:
        checked = self._checked.get(path)
        if checked is not None:
            if check_trailer(path) != checked[0]:  # IntegrityError when the file is not whole
                raise IntegrityError(f"snapshot {path}: not the file the node checked (its SHA-256 trailer differs)")
            return checked[1]
        if self._host is None:
            raise TransportError(f"snapshot {path} was not saved by this node's tools: checking it needs this "
                                 "host's etcd tools (etcdctl or etcdutl)")
        return self._host.status(path)

    # helpers ----------------------------------------------------------------------------------

    def _node_status(self, remote: str) -> SnapshotStatus:
        return self._read_status(remote, "snapshot saved on the node")  # our runner is the node's transport

    def _node_trailer(self, remote: str) -> str:
        """The node file's last 32 bytes, in hex (``tail`` and ``od``: coreutils)."""
        done = self._run(["sh", "-c", 'tail -c "$1" -- "$2" | od -An -v -tx1', "sh", str(TRAILER), remote], 60)
        digest = "".join(done.stdout.split())
        if not done.ok or len(digest) != 2 * TRAILER:
            raise TransportError(f"cannot read the end of the snapshot on the node: "
                                 f"{parsing.last_line(done.stderr) or 'no output'}")
        return digest

    def _copy_back(self, remote: str, path: Path, timeout: float) -> None:
        copy = getattr(self._transport, "copy_to_local", None)
        try:
            if copy is not None:  # streamed to disk: a multi-GB database never sits in memory
                copy(remote, path, timeout)
                os.chmod(path, 0o600)
            else:
                atomic_write(path, self._transport.read_file(remote), 0o600)
        except OSError as e:
            raise SnapshotStoreError(f"cannot write the snapshot to {path}: {e.strerror}") from e
