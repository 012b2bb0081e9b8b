"""Which etcd wrote a sandbox etcd data dir, so the sandbox's etcd can refuse one written by a newer minor.

etcd 3.6+ will no longer start on a data dir created by a newer version (CHANGELOG-3.6; ``etcdutl
migrate --target-version`` exists for that), which is why a snapshot must be restored with the tool
of the snapshot's own etcd minor. The sandbox's restores all run the machine's etcdctl 3.4, which
records no storage version, so the sandbox's ``ctr`` restore leaves :data:`MARKER` in the data dir
with the simulated tool's version, and the sandbox's kubelet compares it with the etcd image of the
manifest before it starts etcd. The rule is applied to every etcd image minor, 3.5 included (a real
3.5 server has no such check; it is only ever asked to start on 3.5 data in a correct rollback).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

MARKER = ".upgrader-sandbox-restore.json"
REFUSAL = "etcd will no longer start on data dir created by newer versions"


def write_marker(data_dir: str | Path, record: dict[str, Any]) -> None:
    """Record who restored the data dir (0600, never through a link)."""
    fd = os.open(os.path.join(data_dir, MARKER), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)


def restored_by(data_dir: str | Path) -> dict[str, Any] | None:
    """What the sandbox's restore recorded in a data dir (None when no sandbox restore wrote it)."""
    try:
        fd = os.open(os.path.join(data_dir, MARKER), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as f:
            data = json.loads(f.read(64 * 1024))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _minor(version: str) -> tuple[int, int] | None:
    parts = version.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def refusal(data_dir: str | Path, image_tag: str) -> str | None:
    """etcd's log line when an etcd at ``image_tag`` (``3.6.5-0``) must not start on the data dir, else None."""
    record = restored_by(data_dir)
    if record is None:
        return None
    written, running = _minor(str(record.get("version", ""))), _minor(image_tag)
    if written is None or running is None or written <= running:
        return None
    return json.dumps({"level": "fatal", "ts": time.time(), "caller": "etcdmain/etcd.go:204", "msg": REFUSAL,
                       "data-dir": str(data_dir), "storage-version": f"{written[0]}.{written[1]}",
                       "etcd-version": image_tag.split("-", 1)[0],
                       "error": f"cannot downgrade storage, data dir written by etcd {written[0]}.{written[1]} "
                                "(use etcdutl migrate --target-version)"})
