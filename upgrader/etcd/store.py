"""The snapshot store on a local directory: one private directory per snapshot, files 0600.

Layout: ``ROOT/CLUSTER/SNAPSHOT/etcd.db`` beside its artefacts (``SNAPSHOT/artefacts/NODE/...``).
Directories are 0700 and files 0600 from the moment they exist (snapshots hold every Secret in the
cluster). The etcd file is written under a temp name and renamed only once the caller has
verified it (:meth:`DirectorySnapshotStore.finish`), so a reader never finds a partial snapshot
under the final name. Every OS failure (read-only, permission, full disk) is a SnapshotStoreError
naming the store, never a traceback, and what was half-written is removed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from pathlib import Path

from upgrader.errors import SnapshotStoreError
from upgrader.ports import StoredSnapshot

ETCD_FILE = "etcd.db"
PARTIAL_SUFFIX = ".partial"
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}", re.ASCII)
_CHUNK = 1 << 20


def sha256_of(path: Path) -> tuple[str, int]:
    """(hex sha256, size) of a file, read in 1 MiB chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _component(name: str) -> str:
    """One path component we build from a name: no '/', no '..', no hidden files."""
    if not _COMPONENT.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"not a plain file name: {name!r}")
    return name


def _why(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if e.errno == errno.EROFS:
        return "it is on a read-only file system"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a file is in the way of its directory"
    return e.strerror or e.__class__.__name__


class DirectorySnapshotStore:
    """The SnapshotStore port on a directory of this machine."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        return self._root

    def prepare(self, *, cluster: str, name: str) -> Path:
        cluster_dir = self._root / _component(cluster)
        directory = cluster_dir / _component(name)
        try:
            for d in (self._root, cluster_dir):
                if not d.is_dir():
                    d.mkdir(mode=0o700, parents=True, exist_ok=True)
                    os.chmod(d, 0o700)
            directory.mkdir(mode=0o700)
            os.chmod(directory, 0o700)
        except OSError as e:
            raise SnapshotStoreError(f"snapshot store {self._root} is not writable: {_why(e)}; nothing was recorded"
                                     ) from e
        try:
            probe = directory / ".writable"
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            probe.unlink()
        except OSError as e:
            self.discard(directory)
            raise SnapshotStoreError(f"snapshot store {self._root} is not writable: {_why(e)}; nothing was recorded"
                                     ) from e
        return directory

    def partial_path(self, directory: Path) -> Path:
        return directory / (ETCD_FILE + PARTIAL_SUFFIX)

    def finish(self, partial: Path) -> StoredSnapshot:
        final = partial.with_name(partial.name.removesuffix(PARTIAL_SUFFIX))
        try:
            os.chmod(partial, 0o600)
            sha256, size = sha256_of(partial)
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            os.replace(partial, final)
            _fsync_dir(final.parent)
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise SnapshotStoreError(f"snapshot store {self._root}: cannot keep {final}: {_why(e)}") from e
        return StoredSnapshot(path=final, size=size, sha256=sha256)

    def put_file(self, directory: Path, name: str, data: bytes) -> StoredSnapshot:
        parts = [_component(p) for p in name.split("/")]
        target = directory.joinpath(*parts)
        temp = target.with_name(f".{target.name}.tmp")
        try:
            for parent in reversed(target.relative_to(directory).parents):
                d = directory / parent
                if not d.is_dir():
                    d.mkdir(mode=0o700)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, target)
        except OSError as e:
            temp.unlink(missing_ok=True)
            raise SnapshotStoreError(f"snapshot store {self._root}: cannot write {target}: {_why(e)}") from e
        return StoredSnapshot(path=target, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    def check(self, stored: StoredSnapshot) -> str | None:
        try:
            sha256, size = sha256_of(stored.path)
        except FileNotFoundError:
            return f"{stored.path} is missing"
        except OSError as e:
            return f"{stored.path} cannot be read: {_why(e)}"
        if size != stored.size:
            return f"{stored.path} is {size} bytes, {stored.size} were recorded"
        if sha256 != stored.sha256:
            return f"{stored.path} has sha256 {sha256}, {stored.sha256} was recorded"
        return None

    def present(self, stored: StoredSnapshot) -> bool:
        """The file is there at its recorded size. Only "no such file" is an absence: a store that
        cannot be read (unmounted, EACCES, EIO) raises SnapshotStoreError, so nobody decides on it."""
        try:
            return stored.path.stat().st_size == stored.size
        except FileNotFoundError:
            return False
        except OSError as e:
            raise SnapshotStoreError(f"snapshot store {self._root}: cannot look at {stored.path}: {_why(e)}") from e

    def verify(self, snapshot: StoredSnapshot) -> bool:
        return self.check(snapshot) is None

    def discard(self, directory: Path) -> None:
        """Remove a snapshot directory; only ever one inside this store's root."""
        resolved = directory.resolve()
        if not resolved.is_relative_to(self._root.resolve()) or resolved == self._root.resolve():
            raise ValueError(f"{directory} is not a snapshot directory of the store {self._root}")
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise SnapshotStoreError(f"snapshot store {self._root}: cannot remove {directory}: {_why(e)}") from e

    def free_bytes(self) -> int:
        where = self._root
        while not where.exists() and where != where.parent:
            where = where.parent
        stats = os.statvfs(where)
        return stats.f_bavail * stats.f_frsize

    def put(self, *, cluster: str, source: Path) -> StoredSnapshot:
        directory = self.prepare(cluster=cluster, name=source.stem)
        partial = self.partial_path(directory)
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
        except OSError as e:
            self.discard(directory)
            raise SnapshotStoreError(f"snapshot store {self._root}: cannot copy {source}: {_why(e)}") from e
        try:
            return self.finish(partial)
        except SnapshotStoreError:
            self.discard(directory)
            raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
