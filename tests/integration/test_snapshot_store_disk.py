"""The snapshot store on a real tiny or read-only file system: a tmpfs mounted in a private mount
namespace (``unshare --mount``), so nothing is mounted on the host. The use case runs on fakes for
the cluster and etcd (tests/unit/snapshot_world.py) but writes to that real file system."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.unit.snapshot_world import SnapshotWorld
from upgrader.ports import EtcdMember
from upgrader.services import snapshots
world = SnapshotWorld(Path({mount!r}))
world.etcd.payload = b"x" * {payload}
if {db_size} is not None:
    world.etcd.etcd_members = [EtcdMember(m.id, m.name, m.peer_urls, m.client_urls, healthy=True, leader=m.leader,
                                          db_size={db_size}, version="3.5.16") for m in world.etcd.etcd_members]
try:
    snapshots.create_snapshot(world.app, cluster="prod")
    outcome = {{"error": None}}
except Exception as e:
    outcome = {{"error": type(e).__name__, "message": str(e), "exit_code": getattr(e, "exit_code", None)}}
outcome["rows"] = len(world.snapshots())
outcome["files"] = [str(p) for p in Path({mount!r}).rglob("*") if p.is_file()]
print(json.dumps(outcome))
"""


def _in_private_tmpfs(tmp_path: Path, *, options: str, payload: int, db_size: int | None) -> dict[str, object]:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to mount a private tmpfs")
    mount = tmp_path / "mnt"
    mount.mkdir()
    script = SCRIPT.format(root=str(ROOT), mount=str(mount), payload=payload, db_size=db_size)
    # the store lives at mnt/store: a new directory on the small (or read-only) file system
    shell = 'mount -t tmpfs -o "$1" upgrader-test "$2" && exec "$3" -c "$4"'
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, "sh", options,
                           str(mount), sys.executable, script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list(mount.iterdir()) == []  # the tmpfs was private: nothing of it is on the host
    return json.loads(done.stdout)


def test_a_full_disk_during_the_save_leaves_no_file_and_no_row(tmp_path: Path) -> None:
    # 2 MiB of room passes the up-front check (the member says its database is empty), then the
    # 3 MB snapshot fills the disk half way (ENOSPC)
    outcome = _in_private_tmpfs(tmp_path, options="size=2m", payload=3_000_000, db_size=0)
    assert outcome["error"] == "SnapshotStoreError" and outcome["exit_code"] == 2
    assert "No space left on device" in str(outcome["message"]) and "\n" not in str(outcome["message"])
    assert outcome["rows"] == 0 and outcome["files"] == []


def test_a_tiny_store_is_refused_before_writing(tmp_path: Path) -> None:
    outcome = _in_private_tmpfs(tmp_path, options="size=256k", payload=0, db_size=None)
    assert outcome["error"] == "SnapshotStoreError" and outcome["exit_code"] == 2
    assert "bytes free; the etcd database of cp-2 is 20480 bytes" in str(outcome["message"])
    assert outcome["rows"] == 0 and outcome["files"] == []


def test_a_read_only_store_is_refused(tmp_path: Path) -> None:
    outcome = _in_private_tmpfs(tmp_path, options="size=2m,ro", payload=0, db_size=0)
    assert outcome["error"] == "SnapshotStoreError" and outcome["exit_code"] == 2
    assert "is not writable: it is on a read-only file system; nothing was recorded" in str(outcome["message"])
    assert outcome["rows"] == 0 and outcome["files"] == []
