"""etcd_session on the in-package fakes: where the endpoints come from, and which etcd the tools must fit.

The etcd tool here is the real EtcdctlTool whose process runner answers as etcdctl 3.4.23 does (its
recorded help texts); the real thing runs in tests/integration/test_etcd_access.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from tests.unit import etcd_help_texts as texts
from upgrader.domain.records import ClusterRecord
from upgrader.errors import EtcdCommandError, EtcdToolError, TransportError, UsageError
from upgrader.etcd.tool import EtcdctlTool
from upgrader.fakes import FakeClusterApi, FakeTransport
from upgrader.ports import CommandResult, EtcdMember
from upgrader.services.etcd_access import EtcdSession, etcd_session
from upgrader.services.wiring import AppContext

CLUSTER = ClusterRecord(name="c", kubeconfig="/nonexistent", context=None, transport={"kind": "local"},
                        created_at=datetime(2026, 12, 1, tzinfo=UTC), skips=(), created_by="test")


def _etcdctl_34(argv: list[str], timeout: float) -> CommandResult:
    args = argv[1:]
    if argv[0].endswith("etcdctl") and args == ["version"]:
        return CommandResult(0, "etcdctl version: 3.4.23\nAPI version: 3.4\n", "")
    if argv[0].endswith("etcdctl") and args[:2] == ["snapshot", "status"]:
        return CommandResult(0, texts.ETCDCTL_34_STATUS, "")
    if argv[0].endswith("etcdctl") and args[:2] == ["snapshot", "restore"]:
        return CommandResult(0, texts.ETCDCTL_34_RESTORE, "")
    return CommandResult(127, "", f"{argv[0]}: command not found\n")


def _manifest(url: str) -> bytes:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [
        {"name": "etcd", "command": ["etcd", f"--advertise-client-urls={url}", "--name=x"]}]}}).encode()


def test_plain_http_members_need_no_tls_and_no_api_call_when_the_inventory_is_given() -> None:
    nodes = {"cp-1": FakeTransport(files={"/etc/kubernetes/manifests/etcd.yaml": _manifest("http://127.0.0.1:41001")}),
             "cp-2": FakeTransport(files={"/etc/kubernetes/manifests/etcd.yaml": _manifest("http://127.0.0.1:41002")}),
             "w-1": FakeTransport(unreachable=True)}
    api = FakeClusterApi({"nodes": []})
    tool = EtcdctlTool(runner=_etcdctl_34)
    app = AppContext(cluster_api_factory=lambda c: api, transport_factory=lambda c, n: nodes[n],
                     etcd_tool_factory=lambda: tool)
    inventory = {"nodes": [{"name": "cp-1", "control_plane": True}, {"name": "cp-2", "control_plane": True},
                           {"name": "w-1", "control_plane": False}]}
    with etcd_session(app, CLUSTER, inventory) as session:
        assert session.endpoints == ["http://127.0.0.1:41001", "http://127.0.0.1:41002"]
        assert session.node_of_endpoint == {"http://127.0.0.1:41001": "cp-1", "http://127.0.0.1:41002": "cp-2"}
        assert session.tls is None and not session.external and session.tool is tool
    assert api.calls == 0
    assert all(not ran for ran in (nodes["cp-1"].ran, nodes["cp-2"].ran))  # files only, no commands


def _member(version: str | None) -> EtcdMember:
    return EtcdMember(id="1", name="cp-1", peer_urls=(), client_urls=(), version=version)


@pytest.mark.parametrize(("versions", "refused"), [
    (["3.4.23", "3.4.23"], False),
    (["3.4.23", None], False),  # a member that did not answer says nothing
    ([None], False),
    (["3.4.23", "3.5.16"], True),  # mid-upgrade: the newest member counts
])
def test_the_tools_must_fit_the_newest_etcd_the_members_report(versions: list[str | None], refused: bool) -> None:
    session = EtcdSession(tool=EtcdctlTool(runner=_etcdctl_34), endpoints=[], tls=None)
    members = [_member(v) for v in versions]
    if refused:
        with pytest.raises(EtcdToolError, match=r"install etcdctl 3\.5 or newer"):
            session.require(members)
    else:
        assert session.require(members).status_tool == "etcdctl"


def test_relative_external_etcd_certificate_paths_are_refused_as_configuration() -> None:
    config = yaml.safe_dump({"kind": "ClusterConfiguration", "etcd": {"external": {
        "endpoints": ["https://10.0.0.5:2379"], "caFile": "pki/ca.crt", "certFile": "/etc/etcd/client.crt",
        "keyFile": "/etc/etcd/client.key"}}})
    api = FakeClusterApi({"nodes": []},
                         configmaps={("kube-system", "kubeadm-config"): {"ClusterConfiguration": config}})
    node = FakeTransport(files={"/etc/etcd/client.crt": b"c", "/etc/etcd/client.key": b"k"})
    app = AppContext(cluster_api_factory=lambda c: api, transport_factory=lambda c, n: node,
                     etcd_tool_factory=lambda: EtcdctlTool(runner=_etcdctl_34))
    inventory = {"nodes": [{"name": "cp-1", "control_plane": True}]}
    with pytest.raises(UsageError, match="must be absolute paths") as refused, etcd_session(app, CLUSTER, inventory):
        pass
    assert refused.value.exit_code == 2


@pytest.mark.parametrize("error", [TransportError, EtcdCommandError])
def test_a_node_or_etcd_command_that_fails_is_the_environments_failure_not_a_bug(error: type) -> None:
    assert error("x").exit_code == 2  # 1 is kept for bugs (ARCHITECTURE.md, exit codes)


def test_the_node_transports_are_given_the_inventory_the_session_was_opened_with() -> None:
    node = FakeTransport(files={"/etc/kubernetes/manifests/etcd.yaml": _manifest("http://127.0.0.1:41001")})
    given: dict[str, object] = {}

    class Recording(AppContext):
        def transport(self, cluster, name, inventory=None):  # type: ignore[no-untyped-def]
            given[name] = inventory
            return node

    app = Recording(cluster_api_factory=lambda c: FakeClusterApi({"nodes": []}),
                    etcd_tool_factory=lambda: EtcdctlTool(runner=_etcdctl_34))
    inventory = {"nodes": [{"name": "cp-1", "control_plane": True, "internal_ip": "10.0.0.11"}]}
    with etcd_session(app, CLUSTER, inventory) as session:
        assert session.endpoints == ["http://127.0.0.1:41001"]
    assert given == {"cp-1": inventory}
