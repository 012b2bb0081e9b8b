"""The NodeTransport and ClusterApi contracts, held against the real adapters and the in-package fakes.

The same test runs on each implementation, so a use case tested on a fake behaves the same way on
the real thing. (The UnitOfWork contract is tests/integration/test_ledger_repository.py, which
runs every repository method on SQLite, PostgreSQL and the in-memory ledger.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from upgrader import errors
from upgrader.cluster.observe import KubeClusterApi
from upgrader.domain.inventory import parse_inventory
from upgrader.fakes import FakeClusterApi, FakeTransport
from upgrader.nodes.local import LocalTransport
from upgrader.ports import ClusterApi, CommandResult, NodeLayout, NodeTransport


def _echo(argv: list[str]) -> CommandResult:
    return CommandResult(0, " ".join(argv[1:]) + "\n", "")


def _fail(argv: list[str]) -> CommandResult:
    return CommandResult(3, "", "failed on purpose\n")


@pytest.fixture(params=["local", "fake"])
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> NodeTransport:
    if request.param == "fake":
        return FakeTransport(handlers={"echo": _echo, "false3": _fail})
    root = tmp_path / "node"
    bin_dir = root / "usr" / "local" / "bin"
    bin_dir.mkdir(parents=True)
    fail = bin_dir / "false3"
    fail.write_text(f"#!{sys.executable}\nimport sys\nsys.stderr.write('failed on purpose\\n')\nsys.exit(3)\n")
    fail.chmod(0o755)
    return _LocalWithBin(NodeLayout(root), bin_dir)


class _LocalWithBin(LocalTransport):
    """LocalTransport on a node root, its own bin dir first on PATH (the node's tools)."""

    def __init__(self, layout: NodeLayout, bin_dir: Path) -> None:
        super().__init__(layout, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})


def test_run_returns_exit_code_and_output_and_never_raises_for_a_failing_command(transport):
    ok = transport.run(["echo", "hello", "node"], timeout=10)
    assert (ok.exit_code, ok.stdout, ok.ok) == (0, "hello node\n", True)
    failed = transport.run(["false3"], timeout=10)
    assert (failed.exit_code, failed.stderr, failed.ok) == (3, "failed on purpose\n", False)


def test_local_output_that_is_not_utf8_comes_back_replaced_not_raised(tmp_path):
    done = LocalTransport(NodeLayout(tmp_path)).run(["printf", "ok \\377\\n"], timeout=10)
    assert (done.exit_code, done.stdout) == (0, "ok \ufffd\n")


def test_an_unknown_program_is_exit_127_like_a_shell(transport):
    missing = transport.run(["no-such-tool-here"], timeout=10)
    assert missing.exit_code == 127 and "not found" in missing.stderr


def test_files_round_trip_with_their_mode_and_missing_ones_are_transport_errors(transport):
    transport.write_file("/etc/kubernetes/admin.conf", b"secret", mode=0o600)
    assert transport.read_file("/etc/kubernetes/admin.conf") == b"secret"
    transport.write_file("/etc/kubernetes/admin.conf", b"replaced")
    assert transport.read_file("/etc/kubernetes/../kubernetes/admin.conf") == b"replaced"
    with pytest.raises(errors.TransportError, match="cannot read /etc/missing"):
        transport.read_file("/etc/missing")


def test_a_path_climbing_above_the_nodes_root_is_refused(transport):
    with pytest.raises(errors.NodePathError):
        transport.read_file("/../../etc/shadow")
    with pytest.raises(ValueError):
        transport.read_file("relative/path")


def _kube_api(api) -> ClusterApi:
    return KubeClusterApi(cluster="sandbox", kubeconfig=str(api.kubeconfig), context=None, timeout=10)


def _kube_unreachable(tmp: Path) -> ClusterApi:
    kubeconfig = tmp / "unreachable.conf"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {}}]\n")
    return KubeClusterApi(cluster="gone", kubeconfig=str(kubeconfig), context=None, timeout=3)


@pytest.mark.etcd
def test_kube_cluster_api_and_its_fake_answer_with_an_inventory_document(api, tmp_path):
    from kubernetes import client

    real = _kube_api(api).observe_inventory()
    names = sorted(n.metadata.name for n in client.CoreV1Api(api.client()).list_node().items)
    assert real["cluster"] == "sandbox" and sorted(n["name"] for n in real["nodes"]) == names
    assert all(n["kubelet"].startswith("v1.") and isinstance(n["ready"], bool) for n in real["nodes"])
    # No kubelet runs here, so no mirror pods: the document says so rather than guessing versions,
    # and parsing it refuses it with the field named.
    with pytest.raises(errors.InvalidInventoryError, match=r"nodes\[0\]\.components"):
        parse_inventory(real)
    fake = FakeClusterApi(real)
    assert fake.observe_inventory() == real and fake.observe_inventory() is not fake.observe_inventory()


@pytest.mark.parametrize("make", [_kube_unreachable, lambda tmp: FakeClusterApi(unreachable="no route")])
def test_an_unreachable_cluster_is_cluster_unreachable_error(make: Callable[[Path], ClusterApi], tmp_path):
    with pytest.raises(errors.ClusterUnreachableError) as caught:
        make(tmp_path).observe_inventory()
    assert caught.value.exit_code == 2


@pytest.mark.etcd
def test_kube_cluster_api_health_reads_answer_api_json_like_the_fake(api, tmp_path):
    real = _kube_api(api)
    status, body = real.readyz()
    assert status == 200 and body.endswith("readyz check passed\n") and "[+]etcd ok" in body
    nodes, pods, pdbs = real.list_nodes(), real.list_pods(), real.list_pdbs()
    assert nodes and all("nodeInfo" in n["status"] and "conditions" in n["status"] for n in nodes)  # camelCase JSON
    assert {p["metadata"]["namespace"] for p in pods} >= {"demo"}
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pdbs] == [("demo", "web")]
    assert "disruptionsAllowed" in pdbs[0]["status"]
    assert "# TYPE apiserver_requested_deprecated_apis gauge" in real.metrics()
    fake = FakeClusterApi({"cluster": "c", "nodes": []}, pods=pods, pdbs=pdbs, metrics="m")
    assert (fake.list_pods(), fake.list_pdbs(), fake.metrics(), fake.readyz()[0]) == (pods, pdbs, "m", 200)


@pytest.mark.parametrize("make", [_kube_unreachable, lambda tmp: FakeClusterApi(unreachable="no route")])
def test_every_health_read_of_an_unreachable_cluster_is_cluster_unreachable_error(make, tmp_path):
    cluster_api = make(tmp_path)
    for read in (cluster_api.readyz, cluster_api.list_nodes, cluster_api.list_pods, cluster_api.list_pdbs,
                 cluster_api.metrics, lambda: cluster_api.get_path("/readyz", timeout=3)):
        with pytest.raises(errors.ClusterUnreachableError):
            read()


@pytest.mark.etcd
def test_a_playbook_checks_get_of_a_path_answers_any_status_like_the_fake(api, tmp_path):
    real = _kube_api(api)
    status, body = real.get_path("/readyz", timeout=10)
    assert status == 200 and "ok" in body
    assert real.get_path("/api/v1/namespaces/demo/pods/no-such-pod", timeout=10)[0] == 404
    assert json.loads(real.get_path("/version", timeout=10)[1])["gitVersion"].startswith("v1.")
    fake = FakeClusterApi({"cluster": "c", "nodes": []})
    fake.paths["/version"] = (200, '{"gitVersion": "v1.31.4"}')
    assert (fake.get_path("/readyz", timeout=1)[0], fake.get_path("/nope", timeout=1)[0]) == (200, 404)
    assert json.loads(fake.get_path("/version", timeout=1)[1])["gitVersion"] == "v1.31.4"


def test_version_and_a_configmap_patch_answer_like_the_fake(api, tmp_path):
    real = _kube_api(api)
    info = real.server_version()
    assert info["gitVersion"].startswith("v1.") and info["minor"] == info["gitVersion"].split(".")[1]
    before = real.get_configmap("kube-system", "kubeadm-config")
    assert before is not None
    real.patch_configmap("kube-system", "kubeadm-config", {"upgrader-contract": "1"})
    assert real.get_configmap("kube-system", "kubeadm-config") == before | {"upgrader-contract": "1"}
    fake = FakeClusterApi({"cluster": "c", "nodes": []}, configmaps={("kube-system", "kubeadm-config"): before})
    fake.patch_configmap("kube-system", "kubeadm-config", {"upgrader-contract": "1"})
    assert fake.get_configmap("kube-system", "kubeadm-config") == before | {"upgrader-contract": "1"}
    fake.version_info = info
    assert fake.server_version() == info
