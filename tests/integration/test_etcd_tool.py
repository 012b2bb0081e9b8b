"""EtcdctlTool against real etcd: this machine's etcdctl 3.4.23 and a 3-member TLS cluster made as kubeadm makes it.

What the tests found on etcd 3.4.23 (see upgrader/etcd/integrity.py): ``snapshot status`` does not
notice a flipped byte (exit 0), so upgrader checks the snapshot's SHA-256 trailer itself.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.etcd_cluster import TlsEtcdCluster
from tests.processes import stop
from tests.unit import etcd_help_texts as texts
from upgrader.errors import ClusterUnreachableError, EtcdToolError, IntegrityError, SnapshotStoreError
from upgrader.etcd.integrity import check_trailer
from upgrader.etcd.tool import EtcdctlTool, host_runner
from upgrader.ports import CommandResult
from upgrader.sandbox.sandbox_config import free_ports

pytestmark = [pytest.mark.etcd, pytest.mark.usefixtures("etcd_installed")]


@pytest.fixture(scope="module")
def tool() -> EtcdctlTool:
    return EtcdctlTool()


@pytest.fixture(scope="module")
def snapshot(tls_etcd: TlsEtcdCluster, tool: EtcdctlTool, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real snapshot of the TLS cluster holding 300 keys of 1 KiB (and the key ``probe``)."""
    for i in range(0, 300, 50):
        for j in range(i, i + 50):
            tls_etcd.etcdctl("put", f"/test/key-{j:04d}", "x" * 1024)
    assert tls_etcd.etcdctl("put", "probe", "restored-value").returncode == 0
    path = tmp_path_factory.mktemp("snap") / "etcd.db"
    tool.save(endpoint=tls_etcd.endpoints[0], tls=tls_etcd.client_tls, path=path)
    return path


def test_probe_of_this_machines_etcdctl_34_is_made_once() -> None:
    ran: list[list[str]] = []
    real = host_runner()

    def counting(argv: list[str], timeout: float) -> CommandResult:
        ran.append(argv)
        return real(argv, timeout)

    tool = EtcdctlTool(runner=counting, etcdctl="/usr/bin/etcdctl", etcdutl="etcdutl")
    info = tool.probe()
    assert info.etcdctl_version == "3.4.23"
    assert info.etcdutl_version is None  # not installed here
    assert (info.status_tool, info.restore_tool, info.bump_revision) == ("etcdctl", "etcdctl", False)
    count = len(ran)
    assert tool.probe() is info and tool.require("3.4.20") is info
    assert len(ran) == count


def _recorded_36(etcdutl: bool):
    """Answers as etcd 3.6's tools give them (help texts rendered from the 3.6 sources, see etcd_help_texts)."""

    def run(argv: list[str], timeout: float) -> CommandResult:
        tool, args = Path(argv[0]).name, argv[1:]
        if tool == "etcdutl" and not etcdutl:
            return CommandResult(127, "", "etcdutl: command not found\n")
        if args == ["version"]:
            return CommandResult(0, f"{tool} version: 3.6.5\nAPI version: 3.6\n", "")
        if tool == "etcdctl" and args[:1] == ["snapshot"]:
            return CommandResult(0, texts.ETCDCTL_36_SNAPSHOT_STATUS, "")  # help, and exit 0
        if tool == "etcdutl" and args[:2] == ["snapshot", "restore"]:
            return CommandResult(0, texts.ETCDUTL_36_RESTORE, "")
        if tool == "etcdutl" and args[:2] == ["snapshot", "status"]:
            return CommandResult(0, "Usage:\n  etcdutl snapshot status <filename> [flags]\n", "")
        return CommandResult(1, "", "unexpected\n")

    return run


def test_etcd_36_capabilities_come_from_the_output_not_the_exit_code() -> None:
    with_utl = EtcdctlTool(runner=_recorded_36(etcdutl=True)).probe()
    assert (with_utl.status_tool, with_utl.restore_tool, with_utl.bump_revision) == ("etcdutl", "etcdutl", True)
    without = EtcdctlTool(runner=_recorded_36(etcdutl=False))
    info = without.probe()
    assert (info.etcdctl_version, info.status_tool, info.restore_tool) == ("3.6.5", None, None)
    with pytest.raises(EtcdToolError, match=r"install etcdutl 3\.6") as e:
        without.require("3.6.1")
    assert e.value.exit_code == 2


def test_require_refuses_a_tool_older_than_the_clusters_etcd(tool: EtcdctlTool) -> None:
    with pytest.raises(EtcdToolError, match=r"etcdctl 3\.4\.23 is older than the cluster's etcd 3\.5\.16: "
                                            r"install etcdctl 3\.5 or newer") as e:
        tool.require("3.5.16")
    assert e.value.exit_code == 2
    assert tool.require("3.4.30-0").etcdctl_version == "3.4.23"  # same minor: fine (an image tag works too)
    assert tool.require(None).status_tool == "etcdctl"
    with pytest.raises(EtcdToolError, match=r"etcdctl not found .*install etcdctl 3\.5 or newer"):
        EtcdctlTool(etcdctl="/nonexistent/etcdctl").require("3.5.16")


def test_members_of_the_tls_cluster(tls_etcd: TlsEtcdCluster, tool: EtcdctlTool) -> None:
    members = tool.members(tls_etcd.endpoints, tls_etcd.client_tls)
    assert sorted(m.name for m in members) == ["cp-1", "cp-2", "cp-3"]
    assert sum(bool(m.leader) for m in members) == 1
    for m in members:
        assert m.healthy is True and m.error is None, m
        assert int(m.id, 16) > 0
        assert m.client_urls == (tls_etcd.member(m.name).client_url,)
        assert m.peer_urls == (tls_etcd.member(m.name).peer_url,)
        assert m.db_size and m.db_size > 0 and m.revision and m.revision >= 1 and m.version == "3.4.23"
        assert m.endpoint == tls_etcd.member(m.name).client_url  # the endpoint that answered as this member
    # any one endpoint is enough: the others are found through the member list
    assert {m.name for m in tool.members(tls_etcd.endpoints[2:], tls_etcd.client_tls) if m.healthy} == {
        "cp-1", "cp-2", "cp-3"}


def test_a_stopped_member_is_reported_unhealthy_with_why(tls_etcd: TlsEtcdCluster, tool: EtcdctlTool) -> None:
    tls_etcd.stop("cp-2")
    try:
        started = time.monotonic()
        members = {m.name: m for m in tool.members(tls_etcd.endpoints, tls_etcd.client_tls, timeout=6)}
        took = time.monotonic() - started
        down = members["cp-2"]
        assert down.healthy is False and down.db_size is None and down.revision is None
        assert down.error and "nothing answers" in down.error, down.error
        assert all(members[n].healthy for n in ("cp-1", "cp-3"))
        assert sum(bool(m.leader) for m in members.values()) == 1 and not down.leader
        assert took < 20, took
    finally:
        tls_etcd.start("cp-2")
        tls_etcd.wait_healthy()


def test_a_wrong_client_certificate_is_a_clear_error(tls_etcd: TlsEtcdCluster, tool: EtcdctlTool) -> None:
    with pytest.raises(ClusterUnreachableError) as e:
        tool.members(tls_etcd.endpoints[:1], tls_etcd.rogue_tls, timeout=3)
    assert "TLS refused" in e.value.message and "client certificate" in e.value.message, e.value.message
    assert "BEGIN" not in e.value.message  # no certificate or key material in the message


def test_no_reachable_endpoint(tool: EtcdctlTool) -> None:
    closed = [f"https://127.0.0.1:{p}" for p in free_ports(2)]
    with pytest.raises(ClusterUnreachableError, match="no etcd endpoint answered") as e:
        tool.members(closed, None, timeout=2)
    assert all(c in e.value.message for c in closed)
    with pytest.raises(ClusterUnreachableError):
        tool.members([], None)


def test_save_status_and_sha256_of_a_real_snapshot(snapshot: Path, tool: EtcdctlTool,
                                                    tls_etcd: TlsEtcdCluster) -> None:
    assert snapshot.stat().st_mode & 0o777 == 0o600
    assert not snapshot.with_name(snapshot.name + ".part").exists()
    data = snapshot.read_bytes()
    assert len(data) % 512 == 32
    assert check_trailer(snapshot) == hashlib.sha256(data[:-32]).hexdigest() == data[-32:].hex()
    status = tool.status(snapshot)
    assert status.total_keys >= 301 and status.total_size == len(data) - 32 and status.hash > 0
    assert status.revision >= 301
    assert tool.status(snapshot) == status  # the same file, the same status


def test_save_timing(tls_etcd: TlsEtcdCluster, tool: EtcdctlTool, snapshot: Path, tmp_path: Path) -> None:
    """Not a benchmark: the figure goes to the report (pytest -s shows it)."""
    started = time.monotonic()
    tool.save(endpoint=tls_etcd.endpoints[1], tls=tls_etcd.client_tls, path=tmp_path / "timed.db")
    took = time.monotonic() - started
    size = (tmp_path / "timed.db").stat().st_size
    print(f"\nsnapshot save of the TLS test cluster: {size} bytes in {took * 1000:.0f} ms")
    assert took < 30


def test_a_flipped_byte_is_an_integrity_error_though_etcdctl_34_status_accepts_it(
        snapshot: Path, tool: EtcdctlTool, tmp_path: Path) -> None:
    data = bytearray(snapshot.read_bytes())
    value = data.find(b"x" * 1024)  # inside one stored value: no bbolt page structure is touched
    assert value > 0
    data[value + 512] ^= 0x01
    flipped = tmp_path / "flipped.db"
    flipped.write_bytes(bytes(data))
    flipped.chmod(0o600)
    # etcdctl 3.4's own status walks the bbolt pages only: a changed value still gives exit 0
    own = subprocess.run(["etcdctl", "snapshot", "status", str(flipped), "-w", "json"], capture_output=True,
                         text=True, timeout=60, check=False, env={"PATH": os.environ["PATH"], "ETCDCTL_API": "3"})
    assert own.returncode == 0, own.stderr
    with pytest.raises(IntegrityError, match="SHA-256 trailer does not match") as e:
        tool.status(flipped)
    assert e.value.exit_code == 8
    original = snapshot.read_bytes()
    for offset in (0, 4096 + 17, len(original) // 2, len(original) - 33, len(original) - 1):  # trailer too
        data = bytearray(original)
        data[offset] ^= 0x80
        flipped.write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match="SHA-256 trailer does not match"):
            tool.status(flipped)


def test_a_truncated_snapshot_is_an_integrity_error(snapshot: Path, tool: EtcdctlTool, tmp_path: Path) -> None:
    data = snapshot.read_bytes()
    for name, cut in (("half.db", data[: len(data) // 2]), ("no-trailer.db", data[:-32]), ("empty.db", b"")):
        path = tmp_path / name
        path.write_bytes(cut)
        with pytest.raises(IntegrityError, match="not a database image plus its SHA-256 trailer"):
            tool.status(path)
    with pytest.raises(IntegrityError, match="cannot be read"):
        tool.status(tmp_path / "missing.db")


def test_a_corrupt_image_with_a_matching_trailer_gets_what_etcdctl_said(snapshot: Path, tool: EtcdctlTool,
                                                                         tmp_path: Path) -> None:
    data = bytearray(snapshot.read_bytes()[:-32])
    data[0:8192] = b"\xff" * 8192  # both of bbolt's meta pages gone
    path = tmp_path / "garbage.db"
    path.write_bytes(bytes(data) + hashlib.sha256(bytes(data)).digest())
    with pytest.raises(IntegrityError, match="etcdctl snapshot status failed: ") as e:
        tool.status(path)
    assert "goroutine" not in e.value.message and len(e.value.message) < 500


def test_save_failures_are_told_apart(tls_etcd: TlsEtcdCluster, tool: EtcdctlTool, tmp_path: Path) -> None:
    closed = f"https://127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(ClusterUnreachableError, match="nothing answers"):
        tool.save(endpoint=closed, tls=tls_etcd.client_tls, path=tmp_path / "a.db", timeout=3)
    with pytest.raises(ClusterUnreachableError, match="TLS refused"):
        tool.save(endpoint=tls_etcd.endpoints[0], tls=tls_etcd.rogue_tls, path=tmp_path / "b.db", timeout=3)
    with pytest.raises(SnapshotStoreError, match="cannot write the snapshot"):
        tool.save(endpoint=tls_etcd.endpoints[0], tls=tls_etcd.client_tls, path=tmp_path / "no" / "dir" / "c.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.fixture
def tiny_store(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: smaller than the snapshot (root is needed to mount; the test machine runs as root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (run as root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30, check=False)


def test_a_full_disk_is_a_snapshot_store_error(tls_etcd: TlsEtcdCluster, tool: EtcdctlTool, snapshot: Path,
                                               tiny_store: Path) -> None:
    with pytest.raises(SnapshotStoreError, match="no space left on device") as e:
        tool.save(endpoint=tls_etcd.endpoints[0], tls=tls_etcd.client_tls, path=tiny_store / "full.db")
    assert e.value.exit_code == 2
    assert list(tiny_store.iterdir()) == []  # no partial file left


def test_restore_brings_the_data_back_in_a_new_etcd(snapshot: Path, tool: EtcdctlTool, tmp_path: Path) -> None:
    client, peer = (f"http://127.0.0.1:{p}" for p in free_ports(2))
    data_dir = tmp_path / "restored"
    tool.restore(path=str(snapshot), name="r-1", data_dir=str(data_dir), initial_cluster=f"r-1={peer}",
                 token="restore-test", peer_url=peer)
    assert (data_dir / "member" / "snap" / "db").is_file()
    log = (tmp_path / "etcd.log").open("wb")
    proc = subprocess.Popen(["etcd", "--name=r-1", f"--data-dir={data_dir}", f"--listen-client-urls={client}",
                             f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
                             f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=r-1={peer}"],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    try:
        env = {"PATH": os.environ["PATH"], "ETCDCTL_API": "3"}
        deadline = time.monotonic() + 30
        while True:
            got = subprocess.run(["etcdctl", f"--endpoints={client}", "get", "probe", "--print-value-only"],
                                 capture_output=True, text=True, timeout=30, check=False, env=env)
            if got.returncode == 0 and got.stdout.strip():
                break
            assert time.monotonic() < deadline, (got.stderr, (tmp_path / "etcd.log").read_text()[-800:])
            time.sleep(0.3)
        assert got.stdout.strip() == "restored-value"
    finally:
        stop(proc)


def test_restore_of_a_flipped_snapshot_is_an_integrity_error(snapshot: Path, tool: EtcdctlTool,
                                                              tmp_path: Path) -> None:
    data = bytearray(snapshot.read_bytes())
    data[100] ^= 0x01
    flipped = tmp_path / "flipped.db"
    flipped.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="expected sha256"):
        tool.restore(path=str(flipped), name="r-1", data_dir=str(tmp_path / "d"),
                     initial_cluster="r-1=http://127.0.0.1:1", token="t", peer_url="http://127.0.0.1:1")
