"""upgrader.sandbox.etcd against real etcd processes: cluster start, KV semantics, failover, restart."""

from __future__ import annotations

import socket
import time

import pytest

from tests.integration.sandbox_helpers import etcd_cluster, needs_etcd
from upgrader.sandbox import processes
from upgrader.sandbox.etcd import members as etcd_members
from upgrader.sandbox.etcd.errors import EtcdStartError, EtcdUnavailableError
from upgrader.sandbox.etcd.kv import EtcdKV
from upgrader.sandbox.etcd.members import (
    EtcdMember,
    member_health,
    spawn_member,
    start_etcd_cluster,
    start_member,
    stop_cluster,
    stop_member,
    wait_healthy,
)
from upgrader.sandbox.sandbox_config import free_ports

pytestmark = [pytest.mark.etcd, needs_etcd]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with etcd_cluster(tmp_path_factory.mktemp("etcd")) as members:
        yield members


def test_cluster_members_are_named_after_nodes_and_healthy(cluster):
    assert [m.name for m in cluster] == ["cp-1", "cp-2", "cp-3"]
    assert all(m.client_url.startswith("http://127.0.0.1:") and m.pid for m in cluster)
    assert all(member_health(m).healthy for m in cluster)


def test_kv_create_is_exclusive_and_update_is_compare_and_swap(cluster):
    kv = EtcdKV([m.client_url for m in cluster])
    first = kv.create("/kvtest/a", b"1")
    assert first is not None
    assert kv.create("/kvtest/a", b"other") is None
    got = kv.get("/kvtest/a")
    assert got is not None and got.value == b"1" and got.mod_revision == first
    second = kv.update("/kvtest/a", b"2", expected_mod_revision=first)
    assert second is not None and second > first
    assert kv.update("/kvtest/a", b"stale", expected_mod_revision=first) is None
    kv.put("/kvtest/b", b"x")
    items, revision = kv.list_prefix("/kvtest/")
    assert [(i.key, i.value) for i in items] == [("/kvtest/a", b"2"), ("/kvtest/b", b"x")]
    assert revision == kv.revision() >= second
    assert kv.delete("/kvtest/a", expected_mod_revision=first) is False
    assert kv.delete("/kvtest/a", expected_mod_revision=second) is True
    assert kv.get("/kvtest/a") is None
    assert kv.delete_prefix("/kvtest/") == 1


def test_kv_fails_over_and_a_member_restarts_from_its_data_dir(tmp_path):
    with etcd_cluster(tmp_path) as members:
        kv = EtcdKV([m.client_url for m in members])  # cp-1 first: it is the one we kill
        kv.put("/failover/before", b"1")
        stop_member(members[0])
        assert not member_health(members[0]).healthy
        kv.put("/failover/during", b"2")
        assert kv.get("/failover/before").value == b"1"
        restarted = start_member(members[0], peers=members)
        try:
            assert restarted.pid != members[0].pid and member_health(restarted).healthy
            alone = EtcdKV([restarted.client_url])
            assert alone.get("/failover/during").value == b"2"  # it caught up with the writes it missed
        finally:
            stop_member(restarted)


def test_a_fully_stopped_cluster_restarts_member_by_member_with_spawn_member(tmp_path):
    with etcd_cluster(tmp_path) as members:
        EtcdKV([m.client_url for m in members]).put("/restart/kept", b"yes")
        stop_cluster(members)
        assert not any(processes.alive(m.pid) for m in members)
        # one member alone has no quorum: waiting for it (start_member) fails and stops it again
        with pytest.raises(EtcdStartError, match="not healthy"):
            start_member(members[0], peers=members, timeout=1.0)
        restarted: list[EtcdMember] = []
        try:
            for m in members:  # as three kubelets would, each starting its own member
                started = time.monotonic()
                restarted.append(spawn_member(m, peers=members, state="existing"))
                assert time.monotonic() - started < 1.0, "spawn_member does not wait for health"
            assert [m.client_url for m in restarted] == [m.client_url for m in members]
            assert all(processes.alive(m.pid) and m.pid not in {o.pid for o in members} for m in restarted)
            wait_healthy(restarted, timeout=30)
            assert EtcdKV([restarted[2].client_url]).get("/restart/kept").value == b"yes"
        finally:
            stop_cluster(restarted)
        assert not any(processes.alive(m.pid) for m in restarted)


def test_spawn_member_takes_initial_cluster_text_options_and_a_log(tmp_path):
    port, peer = free_ports(2)
    member = EtcdMember("solo", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}", tmp_path / "data")
    with pytest.raises(ValueError, match="initial cluster state"):
        spawn_member(member, peers=[member], state="fresh")
    log = tmp_path / "logs" / "etcd.log"
    started = spawn_member(member, peers=f"solo={member.peer_url}", state="new",
                                options={"snapshot-count": "5000"}, log=log)
    try:
        wait_healthy([started], timeout=30)
        assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
        assert "--snapshot-count=5000" in processes.cmdline(started.pid) and log.stat().st_size > 0
    finally:
        stop_member(started)


def test_all_endpoints_down_raises_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kv = EtcdKV([f"http://127.0.0.1:{port}"], timeout=1)
    with pytest.raises(EtcdUnavailableError):
        kv.get("/x")


def test_port_clash_is_retried_on_fresh_ports(tmp_path, monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real_free_ports = free_ports
    calls = []

    def first_call_clashes(count: int) -> list[int]:
        ports = real_free_ports(count)
        calls.append(ports)
        return [taken.getsockname()[1], *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(etcd_members, "free_ports", first_call_clashes)
    try:
        members = start_etcd_cluster({"cp-1": tmp_path / "cp-1"}, timeout=20)
        try:
            assert len(calls) == 2 and member_health(members[0]).healthy
        finally:
            stop_cluster(members)
    finally:
        taken.close()
