"""NodeEtcdTool over SshTransport: etcdctl runs on the node (this machine, through the real sshd; the
node has /usr/bin/etcdctl 3.4), against the real TLS etcd cluster; this "host" lends no etcd tool."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.integration.etcd_cluster import TlsEtcdCluster
from upgrader.domain.node_access import SshTarget
from upgrader.errors import IntegrityError, TransportError, UpgraderError
from upgrader.etcd.integrity import check_trailer
from upgrader.etcd.node_tool import NodeEtcdTool
from upgrader.nodes.ssh import SshTransport

pytestmark = pytest.mark.etcd


class StreamOnly(SshTransport):
    """The real transport, with read_file refused: a snapshot must come back streamed to disk."""

    def read_file(self, path: str) -> bytes:
        raise AssertionError(f"read into memory: {path}")


@pytest.fixture
def node(sshd_server):
    target = SshTarget(address="127.0.0.1", address_from="set", user="root", port=sshd_server.port,
                       identity=str(sshd_server.user_key), known_hosts=str(sshd_server.known_hosts()))
    with StreamOnly(target, node="cp-1") as transport:
        yield transport


def test_a_snapshot_is_saved_checked_on_the_node_and_streamed_back(node, tls_etcd: TlsEtcdCluster,
                                                                     tmp_path: Path) -> None:
    node_dir = tmp_path / "node-dir"  # the node's private snapshot dir (not the host's /var/lib)
    tool = NodeEtcdTool(node, host_tool=None, node_dir=str(node_dir))  # no host tools at all
    assert tool.require("3.4.23").status_tool == "etcdctl"  # the node's etcdctl, probed over ssh
    assert tls_etcd.etcdctl("put", "node-tool-key", "v").returncode == 0
    local = tmp_path / "local" / "snap.db"
    local.parent.mkdir()
    tool.save(endpoint=tls_etcd.endpoints[0], tls=tls_etcd.client_tls, path=local, timeout=60)
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    assert list(node_dir.iterdir()) == []  # the node's copy is gone
    status = tool.status(local)  # the node's own answer, tied to this file by its trailer
    assert status.revision > 0 and status.total_keys > 0
    check_trailer(local)
    # the same file, damaged after the copy: the trailer check here refuses it
    data = bytearray(local.read_bytes())
    data[100] ^= 0xFF
    local.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="trailer"):
        tool.status(local)
    # a file this tool did not save: only this host's tools could check it, and there are none
    with pytest.raises(TransportError, match="host's etcd tools"):
        tool.status(tmp_path / "elsewhere.db")


def test_a_failed_save_leaves_nothing_here_or_on_the_node(node, tls_etcd: TlsEtcdCluster, tmp_path: Path) -> None:
    node_dir = tmp_path / "node-dir"
    tool = NodeEtcdTool(node, host_tool=None, node_dir=str(node_dir))
    local = tmp_path / "snap.db"
    with pytest.raises(UpgraderError) as refused:  # a client certificate etcd does not trust
        tool.save(endpoint=tls_etcd.endpoints[0], tls=tls_etcd.rogue_tls, path=local, timeout=10)
    assert "snapshot save from" in str(refused.value)
    assert not local.exists() and list(node_dir.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node-dir"]
