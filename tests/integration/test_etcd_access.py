"""etcd_session against real etcd: the TLS cluster seen through kubeadm-like node roots, and a real sandbox.

The TLS cluster's members each have a node root laid out as kubeadm lays out a control-plane node
(/etc/kubernetes/manifests/etcd.yaml, /etc/kubernetes/pki/...); a LocalTransport rooted there is
the node as upgrader reaches it. The API is a FakeClusterApi holding the inventory and the
kubeadm-config ConfigMap, since what is under test is how the session finds and uses etcd.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cli
from tests.integration.etcd_cluster import TlsEtcdCluster
from upgrader.domain.records import ClusterRecord
from upgrader.errors import ClusterUnreachableError, TransportError
from upgrader.etcd.node_tool import NodeEtcdTool
from upgrader.etcd.tool import EtcdctlTool
from upgrader.fakes import FakeClusterApi
from upgrader.nodes.local import LocalTransport
from upgrader.ports import NodeLayout, NodeTransport
from upgrader.sandbox.sandbox_config import free_ports
from upgrader.services.etcd_access import advertised_client_urls, etcd_session
from upgrader.services.wiring import AppContext

pytestmark = [pytest.mark.etcd, pytest.mark.usefixtures("etcd_installed")]

INVENTORY = {"cluster": "tls", "nodes": [
    {"name": "cp-1", "control_plane": True, "kubelet": "v1.30.6", "ready": True},
    {"name": "cp-2", "control_plane": True, "kubelet": "v1.30.6", "ready": True},
    {"name": "cp-3", "control_plane": True, "kubelet": "v1.30.6", "ready": True},
    {"name": "worker-1", "control_plane": False, "kubelet": "v1.30.6", "ready": True},
]}
STACKED = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.30.6\n" \
          "etcd:\n  local:\n    dataDir: /var/lib/etcd\n"
CLUSTER = ClusterRecord(name="tls", kubeconfig="/nonexistent", context=None, transport={"kind": "local"},
                        created_at=datetime(2026, 12, 1, tzinfo=UTC), skips=(), created_by="test")


def _app(transports: dict[str, NodeTransport], *, config: str = STACKED,
         inventory: dict[str, Any] | None = None) -> tuple[AppContext, FakeClusterApi]:
    api = FakeClusterApi(inventory or INVENTORY,
                         configmaps={("kube-system", "kubeadm-config"): {"ClusterConfiguration": config}})

    def transport(cluster: ClusterRecord, node: str) -> NodeTransport:
        return transports[node]

    return AppContext(cluster_api_factory=lambda c: api, transport_factory=transport), api


def _nodes(tls_etcd: TlsEtcdCluster) -> dict[str, NodeTransport]:
    return {m.name: LocalTransport(NodeLayout(m.root)) for m in tls_etcd.members}


def test_a_stacked_etcd_is_found_through_the_static_pods_with_kubeadms_client_cert(tls_etcd: TlsEtcdCluster) -> None:
    app, api = _app(_nodes(tls_etcd))
    with etcd_session(app, CLUSTER) as session:
        assert session.endpoints == tls_etcd.endpoints and not session.external
        assert session.node_of_endpoint == {m.client_url: m.name for m in tls_etcd.members}
        assert session.tls is not None
        tmp = session.tls.cacert.parent
        assert tmp.stat().st_mode & 0o777 == 0o700
        assert {p.name: p.stat().st_mode & 0o777 for p in tmp.iterdir()} == {
            "ca.crt": 0o600, "client.crt": 0o600, "client.key": 0o600}
        pki = tls_etcd.members[0].root / "etc/kubernetes/pki/etcd"
        assert session.tls.key.read_bytes() == (pki / "healthcheck-client.key").read_bytes()
        members = session.members()
        assert sorted(m.name for m in members) == ["cp-1", "cp-2", "cp-3"] and all(m.healthy for m in members)
        assert session.require(members).etcdctl_version == "3.4.23"  # the members say 3.4.23
    assert not tmp.exists()
    assert api.calls == 1  # the inventory came from the API when none was given


class _NoHealthcheckCert(LocalTransport):
    def read_file(self, path: str) -> bytes:
        if "healthcheck-client" in path:
            raise TransportError(f"cannot read {path}: No such file or directory")
        return super().read_file(path)


def test_the_apiserver_etcd_client_cert_is_the_fallback_and_the_dir_goes_on_error(tls_etcd: TlsEtcdCluster) -> None:
    transports: dict[str, NodeTransport] = {m.name: _NoHealthcheckCert(NodeLayout(m.root)) for m in tls_etcd.members}
    app, _ = _app(transports)
    with pytest.raises(RuntimeError, match="boom"), etcd_session(app, CLUSTER, INVENTORY) as session:
        assert session.tls is not None
        assert session.tls.cert.read_bytes() == (
            tls_etcd.members[0].root / "etc/kubernetes/pki/apiserver-etcd-client.crt").read_bytes()
        assert len(session.members()) == 3
        tmp = session.tls.cacert.parent
        raise RuntimeError("boom")
    assert not tmp.exists()


def test_no_certificate_or_key_material_in_errors_or_logs(tls_etcd: TlsEtcdCluster, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cp-1"
    shutil.copytree(tls_etcd.members[0].root / "etc", root / "etc")
    pki = root / "etc/kubernetes/pki/etcd"
    for suffix in ("crt", "key"):  # a stranger's client certificate where kubeadm's should be
        shutil.copy(tls_etcd.rogue_tls.cert if suffix == "crt" else tls_etcd.rogue_tls.key,
                    pki / f"healthcheck-client.{suffix}")
    app, _ = _app({"cp-1": LocalTransport(NodeLayout(root))},
                  inventory={"nodes": [{"name": "cp-1", "control_plane": True}]})
    caplog.set_level("DEBUG")
    with pytest.raises(ClusterUnreachableError) as e, etcd_session(app, CLUSTER) as session:
        session.members(timeout=3)
    out, err = capfd.readouterr()
    said = "\n".join([e.value.message, caplog.text, out, err])
    assert "TLS refused" in e.value.message
    secrets = [p.read_text() for p in (pki / "healthcheck-client.key", pki / "healthcheck-client.crt", pki / "ca.crt")]
    for secret in secrets:
        body = "".join(secret.splitlines()[1:-1])
        assert "BEGIN" not in said and body[:40] not in said and body[-40:] not in said


def test_external_etcd_from_kubeadm_config(tls_etcd: TlsEtcdCluster) -> None:
    config = yaml.safe_dump({
        "apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "ClusterConfiguration",
        "etcd": {"external": {"endpoints": tls_etcd.endpoints[1:],
                              "caFile": "/etc/kubernetes/pki/etcd/ca.crt",
                              "certFile": "/etc/kubernetes/pki/apiserver-etcd-client.crt",
                              "keyFile": "/etc/kubernetes/pki/apiserver-etcd-client.key"}}})
    # the control-plane nodes hold the client files but run no etcd static pod
    app, _ = _app({"cp-1": LocalTransport(NodeLayout(tls_etcd.members[0].root))}, config=config,
                  inventory={"nodes": [{"name": "cp-1", "control_plane": True}]})
    with etcd_session(app, CLUSTER) as session:
        assert session.external and session.endpoints == tls_etcd.endpoints[1:]
        assert session.node_of_endpoint == {}
        assert len([m for m in session.members() if m.healthy]) == 3


def test_no_etcd_manifest_on_any_node_is_a_clear_error(tmp_path: Path) -> None:
    empty = {n: LocalTransport(NodeLayout(tmp_path)) for n in ("cp-1", "cp-2", "cp-3")}
    app, _ = _app(empty)
    refused = r"no etcd endpoint found .*cp-1: cannot read /etc/kubernetes/manifests/etcd.yaml: No such file"
    with pytest.raises(ClusterUnreachableError, match=refused), etcd_session(app, CLUSTER):
        pass
    app, _ = _app(empty, inventory={"nodes": [{"name": "worker-1", "control_plane": False}]})
    with pytest.raises(ClusterUnreachableError, match="no control-plane node"), etcd_session(app, CLUSTER):
        pass


class _Forwarding(LocalTransport):
    """A node whose etcd port this host cannot reach, but whose transport forwards to it (as SSH -L does)."""

    def __init__(self, root: Path, target: int) -> None:
        super().__init__(NodeLayout(root))
        self.target = target
        self.forwarded: list[tuple[str, int]] = []

    def forward(self, host: str, port: int) -> tuple[str, int]:
        self.forwarded.append((host, port))
        return "127.0.0.1", self.target


def test_an_unreachable_endpoint_goes_through_the_nodes_forward(tls_etcd: TlsEtcdCluster, tmp_path: Path) -> None:
    member = tls_etcd.members[0]
    root = tmp_path / "cp-1"
    shutil.copytree(member.root / "etc", root / "etc")
    closed = free_ports(1)[0]
    manifest = root / "etc/kubernetes/manifests/etcd.yaml"
    manifest.write_text(manifest.read_text().replace(member.client_url, f"https://127.0.0.1:{closed}"))
    real_port = int(member.client_url.rsplit(":", 1)[1])
    node = _Forwarding(root, real_port)
    app, _ = _app({"cp-1": node}, inventory={"nodes": [{"name": "cp-1", "control_plane": True}]})
    with etcd_session(app, CLUSTER) as session:
        assert node.forwarded == [("127.0.0.1", closed)]
        assert session.endpoints == [member.client_url] and session.node_of_endpoint == {member.client_url: "cp-1"}
        assert len([m for m in session.members() if m.healthy]) == 3


def test_advertised_client_urls_read_like_kubeadm_writes_them() -> None:
    pod = {"metadata": {"annotations": {"kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://10.0.0.9:2379"}},
           "spec": {"containers": [{"name": "etcd", "command": ["etcd", "--name=cp-1",
                                                                "--advertise-client-urls=https://10.0.0.5:2379"]}]}}
    assert advertised_client_urls(yaml.safe_dump(pod).encode()) == ["https://10.0.0.5:2379"]
    pod["spec"]["containers"][0]["command"] = ["etcd", "--advertise-client-urls", "https://a:2379,https://b:2379"]
    assert advertised_client_urls(yaml.safe_dump(pod).encode()) == ["https://a:2379", "https://b:2379"]
    pod["spec"]["containers"][0]["command"] = ["etcd"]
    assert advertised_client_urls(yaml.safe_dump(pod).encode()) == ["https://10.0.0.9:2379"]
    for bad in (b"\x00: [", b"just text", b"x" * (1024 * 1024 + 1), yaml.safe_dump({"spec": {}}).encode()):
        with pytest.raises(ValueError):
            advertised_client_urls(bad)


# The sandbox: its members advertise plain http on loopback, so no TLS and no forward.

@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppContext, ClusterRecord]]:
    cli = Cli(tmp_path_factory.mktemp("upgrader-home"))
    try:
        # --node-etcd-tools: the node-local tools test needs an etcdctl on the nodes (kubeadm nodes have none)
        cli.up("etcdaccess", "--control-planes", "2", "--workers", "1", "--node-etcd-tools")
        app = AppContext(db=str(cli.home / "ledger.db"))
        try:
            with app.unit_of_work() as uow:
                cluster = uow.repo.get_cluster("etcdaccess")
            yield app, cluster
        finally:
            app.close()
    finally:
        cli.down_all()


@pytest.mark.slow
def test_a_sandbox_session_reaches_its_etcd_without_tls(sandbox: tuple[AppContext, ClusterRecord],
                                                        tmp_path: Path) -> None:
    app, cluster = sandbox
    with etcd_session(app, cluster) as session:
        assert session.tls is None and not session.external
        assert sorted(session.node_of_endpoint.values()) == ["cp-1", "cp-2"]
        assert all(e.startswith("http://127.0.0.1:") for e in session.endpoints)
        members = session.members()
        assert sorted(m.name for m in members) == ["cp-1", "cp-2"]
        assert all(m.healthy for m in members) and sum(bool(m.leader) for m in members) == 1
        # its manifests name etcd 3.5 images, but the members are this host's etcd 3.4: the tools fit them
        assert {m.version for m in members} == {"3.4.23"} and session.require(members).status_tool == "etcdctl"
        session.tool.save(endpoint=session.endpoints[0], tls=None, path=tmp_path / "s.db")
        assert session.tool.status(tmp_path / "s.db").total_keys > 0


@pytest.mark.slow
def test_node_local_tools_on_a_sandbox(sandbox: tuple[AppContext, ClusterRecord], tmp_path: Path) -> None:
    app, cluster = sandbox
    node_tools = replace(cluster, transport={**(cluster.transport or {}), "etcd_tools": "node"})
    with etcd_session(app, node_tools) as session:
        assert isinstance(session.tool, NodeEtcdTool)
        assert session.endpoints == ["https://127.0.0.1:2379"] and session.node_of_endpoint == {
            "https://127.0.0.1:2379": "cp-1"}
        members = session.members()
        assert sorted(m.name for m in members) == ["cp-1", "cp-2"] and all(m.healthy for m in members), members
        path = tmp_path / "node.db"
        session.tool.save(endpoint=session.endpoints[0], tls=session.tls, path=path)
        assert path.stat().st_mode & 0o777 == 0o600
        assert EtcdctlTool().status(path).revision > 0


# ClusterApi.get_configmap (the kubeadm-config read): the real adapter and its fake answer alike.

@pytest.mark.etcd
def test_get_configmap_of_the_kube_api_and_its_fake(api, tmp_path: Path) -> None:
    from upgrader.cluster.observe import KubeClusterApi

    real = KubeClusterApi(cluster="sandbox", kubeconfig=str(api.kubeconfig), context=None, timeout=10)
    data = real.get_configmap("kube-system", "kubeadm-config")
    assert data is not None and "kind: ClusterConfiguration" in data["ClusterConfiguration"]
    assert real.get_configmap("kube-system", "no-such-configmap") is None
    fake = FakeClusterApi({}, configmaps={("kube-system", "kubeadm-config"): data})
    assert fake.get_configmap("kube-system", "kubeadm-config") == data
    assert fake.get_configmap("kube-system", "no-such-configmap") is None
    gone = tmp_path / "gone.conf"
    gone.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
                    "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
                    "users: [{name: u, user: {}}]\n")
    for unreachable in (KubeClusterApi(cluster="gone", kubeconfig=str(gone), context=None, timeout=3),
                        FakeClusterApi(unreachable="no route")):
        with pytest.raises(ClusterUnreachableError):
            unreachable.get_configmap("kube-system", "kubeadm-config")
