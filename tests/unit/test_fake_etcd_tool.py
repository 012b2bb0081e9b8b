"""FakeEtcdTool keeps the real tool's rules that the snapshot use cases rely on: a saved file is a
sector-aligned image plus its SHA-256 trailer, 0600; a flipped byte is an IntegrityError (exit 8);
a tool older than the cluster's etcd minor is refused naming the tool needed (exit 2)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from upgrader import errors
from upgrader.fakes import FakeEtcdTool


def test_save_writes_a_trailered_private_file_whose_status_reads_back(tmp_path: Path) -> None:
    tool = FakeEtcdTool(revision=77, payload=b"key value\n" * 100)
    path = tmp_path / "s.db"
    tool.save(endpoint="https://10.0.0.2:2379", tls=None, path=path)
    data = path.read_bytes()
    assert len(data) % 512 == 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    status = tool.status(path)
    assert status.revision == 77 and status.total_size == len(data)
    assert tool.status(path) == status  # deterministic
    assert tool.saved == [("https://10.0.0.2:2379", path)]


def test_a_flipped_byte_is_an_integrity_error(tmp_path: Path) -> None:
    tool = FakeEtcdTool()
    path = tmp_path / "s.db"
    tool.save(endpoint="e", tls=None, path=path)
    FakeEtcdTool.corrupt(path, offset=3)
    with pytest.raises(errors.IntegrityError, match="trailer does not match") as caught:
        tool.status(path)
    assert caught.value.exit_code == 8
    with pytest.raises(errors.IntegrityError):
        tool.status(tmp_path / "missing.db")


@pytest.mark.parametrize(("tool_version", "etcd", "refused"), [
    ("3.4.23", "3.5.16", True), ("3.5.0", "3.5.16", False), ("3.6.1", "3.5.16", False), ("3.5.16", None, False)])
def test_require_refuses_a_tool_older_than_the_clusters_minor(tool_version: str, etcd: str | None,
                                                               refused: bool) -> None:
    tool = FakeEtcdTool(tool_version=tool_version)
    if refused:
        with pytest.raises(errors.EtcdToolError, match=r"install etcdctl 3\.5 or newer") as caught:
            tool.require(etcd)
        assert caught.value.exit_code == 2
    else:
        assert tool.require(etcd).etcdctl_version == tool_version


def test_an_unreachable_etcd_is_unreachable(tmp_path: Path) -> None:
    tool = FakeEtcdTool(unreachable="connection refused")
    with pytest.raises(errors.ClusterUnreachableError):
        tool.members(["https://10.0.0.1:2379"], None)
    with pytest.raises(errors.ClusterUnreachableError):
        tool.save(endpoint="https://10.0.0.1:2379", tls=None, path=tmp_path / "s.db")
    assert not (tmp_path / "s.db").exists()
