"""A snapshot file's own checksum: the SHA-256 trailer that ``snapshot save`` appends.

What the tools do (etcd-io/etcd clientv3/snapshot/v3_snapshot.go at v3.4, etcdutl/snapshot at v3.6):
``snapshot save`` streams the member's bbolt database followed by 32 bytes, the SHA-256 of
everything before them, and refuses a stream whose size is not ``512 * k + 32``. ``snapshot
restore`` checks that digest (``expected sha256 [...]``). ``snapshot status`` does not: it opens the
bbolt image and walks its pages, so a byte flipped inside a value passes unnoticed (measured with
etcdctl 3.4.23: four of five single-byte flips gave exit 0, one of them with a different hash), and
a file cut short can crash it. So upgrader checks the trailer itself before trusting a status.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from upgrader.errors import IntegrityError

TRAILER = 32  # bytes of SHA-256
SECTOR = 512
_CHUNK = 1024 * 1024


def check_trailer(path: Path) -> str:
    """The hex SHA-256 the trailer holds, once it matches the image; IntegrityError (exit 8) when not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise IntegrityError(f"snapshot {path}: cannot be read: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise IntegrityError(f"snapshot {path}: not a regular file")
        size = info.st_size
        if size < SECTOR + TRAILER or size % SECTOR != TRAILER:
            raise IntegrityError(f"snapshot {path}: {size} bytes is not a database image plus its SHA-256 "
                                 "trailer (truncated, or not a `snapshot save` file)")
        digest = hashlib.sha256()
        remaining = size - TRAILER
        while remaining > 0:
            chunk = f.read(min(_CHUNK, remaining))
            if not chunk:
                raise IntegrityError(f"snapshot {path}: shrank while it was read")
            digest.update(chunk)
            remaining -= len(chunk)
        trailer = f.read(TRAILER)
    if trailer != digest.digest():
        raise IntegrityError(f"snapshot {path}: its SHA-256 trailer does not match its contents (corrupt)")
    return trailer.hex()
