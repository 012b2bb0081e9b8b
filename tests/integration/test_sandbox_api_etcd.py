"""upgrader.sandbox.etcd against real etcd processes: cluster start, KV semantics, failover, restart."""

from __future__ import annotations

import socket

import pytest

from tests.integration.sandbox_helpers import etcd_cluster, needs_etcd
from upgrader.sandbox import etcd

pytestmark = [pytest.mark.etcd, needs_etcd]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with etcd_cluster(tmp_path_factory.mktemp("etcd")) as members:
        yield members


def test_cluster_members_are_named_after_nodes_and_healthy(cluster):
    assert [m.name for m in cluster] == ["cp-1", "cp-2", "cp-3"]
    assert all(m.client_url.startswith("http://127.0.0.1:") and m.pid for m in cluster)
    assert all(etcd.member_health(m).healthy for m in cluster)


def test_kv_create_is_exclusive_and_update_is_compare_and_swap(cluster):
    kv = etcd.EtcdKV([m.client_url for m in cluster])
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
        kv = etcd.EtcdKV([m.client_url for m in members])  # cp-1 first: it is the one we kill
        kv.put("/failover/before", b"1")
        etcd.stop_member(members[0])
        assert not etcd.member_health(members[0]).healthy
        kv.put("/failover/during", b"2")
        assert kv.get("/failover/before").value == b"1"
        restarted = etcd.start_member(members[0], peers=members)
        try:
            assert restarted.pid != members[0].pid and etcd.member_health(restarted).healthy
            alone = etcd.EtcdKV([restarted.client_url])
            assert alone.get("/failover/during").value == b"2"  # it caught up with the writes it missed
        finally:
            etcd.stop_member(restarted)


def test_all_endpoints_down_raises_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kv = etcd.EtcdKV([f"http://127.0.0.1:{port}"], timeout=1)
    with pytest.raises(etcd.EtcdUnavailableError):
        kv.get("/x")


def test_port_clash_is_retried_on_fresh_ports(tmp_path, monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real_free_ports = etcd.free_ports
    calls = []

    def first_call_clashes(count: int) -> list[int]:
        ports = real_free_ports(count)
        calls.append(ports)
        return [taken.getsockname()[1], *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(etcd, "free_ports", first_call_clashes)
    try:
        members = etcd.start_etcd_cluster({"cp-1": tmp_path / "cp-1"}, timeout=20)
        try:
            assert len(calls) == 2 and etcd.member_health(members[0]).healthy
        finally:
            etcd.stop_cluster(members)
    finally:
        taken.close()
