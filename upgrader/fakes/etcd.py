"""etcdctl as a fake: members, snapshots with a real SHA-256 trailer, integrity and version rules."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from upgrader import errors
from upgrader.ports import EtcdMember, EtcdTls, EtcdToolInfo, KeyListing, SnapshotStatus


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
        self.keyspace: dict[str, int] = {}  # the live keys and their mod revisions, for ``keys``
        self.snapshot_keyspace: dict[str, int] = {}  # what a snapshot restored by ``scratch`` holds
        self.scratches: list[Path] = []  # snapshots restored into a scratch etcd
        self.scratch_open = 0  # scratch etcds running now
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

    def keys(self, endpoints: Sequence[str], tls: EtcdTls | None, timeout: float = 120.0) -> KeyListing:
        if self.unreachable is not None:
            raise errors.ClusterUnreachableError(self.unreachable)
        return KeyListing(revision=max([self.revision, *self.keyspace.values()]), keys=dict(self.keyspace))

    @contextlib.contextmanager
    def scratch(self, path: Path, snapshot_etcd: str | None = None) -> Iterator[FakeScratchEtcd]:
        """For ``AppContext(scratch_etcd_factory=tool.scratch)``: the snapshot's status (IntegrityError
        when corrupt), then a scratch holding ``snapshot_keyspace`` at the snapshot's revision."""
        status = self.status(path)
        self.scratches.append(path)
        self.scratch_open += 1
        try:
            yield FakeScratchEtcd(endpoint="http://127.0.0.1:1", restore_tool="etcdctl", bumped_by=0,
                                  listing=KeyListing(revision=status.revision, keys=dict(self.snapshot_keyspace)))
        finally:
            self.scratch_open -= 1

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


@dataclasses.dataclass(frozen=True)
class FakeScratchEtcd:
    """The ScratchEtcd port over a fixed listing; its hashkv is a CRC of the keys up to the revision."""

    endpoint: str
    restore_tool: str
    bumped_by: int
    listing: KeyListing

    def keys(self, timeout: float = 300.0) -> KeyListing:
        return self.listing

    def hashkv(self, revision: int, timeout: float = 60.0) -> int:
        text = "".join(f"{k}={m}\n" for k, m in sorted(self.listing.keys.items()) if m <= revision)
        return zlib.crc32(text.encode())
