"""A 3+3 sandbox at v1.30 seen from outside: the official python client, kubectl, the CLI, etcd."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from tests.e2e.conftest import Cli, _need, eventually

NODES = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2", "worker-3"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, dict]]:
    _need("etcd")
    _need("kubectl")
    cli = Cli(tmp_path_factory.mktemp("upgrader-home"))
    try:
        yield cli, cli.up("demo", "--version", "v1.30.6", "--node-etcd-tools")  # the tests type etcdctl on nodes
    finally:
        cli.down_all()


def test_python_client_lists_nodes_and_kube_system_pods(demo: tuple[Cli, dict]) -> None:
    from kubernetes import client, config

    _, info = demo
    api = client.CoreV1Api(config.new_client_from_config(config_file=info["kubeconfig"]))
    nodes = api.list_node().items
    assert sorted(n.metadata.name for n in nodes) == NODES
    assert {n.status.node_info.kubelet_version for n in nodes} == {"v1.30.6"}
    assert all(c.status == "True" for n in nodes for c in n.status.conditions if c.type == "Ready")
    pods = {p.metadata.name: p for p in api.list_namespaced_pod("kube-system").items}
    for cp in NODES[:3]:
        assert pods[f"kube-apiserver-{cp}"].spec.containers[0].image == "registry.k8s.io/kube-apiserver:v1.30.6"
        assert pods[f"etcd-{cp}"].spec.containers[0].image == "registry.k8s.io/etcd:3.5.15-0"
        assert pods[f"kube-apiserver-{cp}"].status.phase == "Running"
    version = client.VersionApi(config.new_client_from_config(config_file=info["kubeconfig"])).get_code()
    assert version.git_version == "v1.30.6"


def test_first_start_spreads_replicas_and_every_address_is_loopback(demo: tuple[Cli, dict]) -> None:
    from kubernetes import client, config

    _, info = demo
    api = client.CoreV1Api(config.new_client_from_config(config_file=info["kubeconfig"]))

    def placed(namespace: str, selector: str) -> list[str]:
        return sorted(p.spec.node_name or "" for p in api.list_namespaced_pod(namespace, label_selector=selector).items)

    assert placed("demo", "app=web") == ["worker-1", "worker-2", "worker-3"]
    coredns = placed("kube-system", "k8s-app=kube-dns")
    assert len(coredns) == 2 and len(set(coredns)) == 2, coredns
    addresses = {a.address for n in api.list_node().items for a in n.status.addresses if a.type == "InternalIP"}
    assert len(addresses) == len(NODES) and all(ipaddress.ip_address(a).is_loopback for a in addresses), addresses
    host_ips = {p.status.host_ip for p in api.list_pod_for_all_namespaces().items}
    assert all(ipaddress.ip_address(ip).is_loopback for ip in host_ips), host_ips


def test_kubectl_lists_nodes_and_pods(demo: tuple[Cli, dict]) -> None:
    cli, info = demo
    wide = cli.kubectl(info["kubeconfig"], "get", "nodes", "-o", "wide").stdout
    assert wide.splitlines()[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    assert all(f"{n} " in wide for n in NODES)
    pods = cli.kubectl(info["kubeconfig"], "get", "pods", "-A").stdout
    assert "kube-apiserver-cp-2" in pods and "etcd-cp-3" in pods and "Running" in pods


def test_a_deleted_mirror_pod_is_recreated_by_its_kubelet(demo: tuple[Cli, dict]) -> None:
    """As a real kubelet's periodic sync does: the static pod still runs, so its mirror comes back."""
    cli, info = demo
    kc = info["kubeconfig"]
    before = json.loads(cli.kubectl(kc, "get", "pod", "-n", "kube-system", "kube-scheduler-cp-2", "-o", "json").stdout)
    cli.kubectl(kc, "delete", "pod", "-n", "kube-system", "kube-scheduler-cp-2", "--wait=false")

    def back() -> bool:
        done = cli.kubectl(kc, "get", "pod", "-n", "kube-system", "kube-scheduler-cp-2", "-o", "json", check=False)
        return done.returncode == 0 and json.loads(done.stdout)["metadata"]["uid"] != before["metadata"]["uid"]

    eventually(back, timeout=20)


def test_kubectl_drains_and_uncordons_a_worker(demo: tuple[Cli, dict]) -> None:
    cli, info = demo
    kc = info["kubeconfig"]
    drained = cli.kubectl(kc, "drain", "worker-2", "--ignore-daemonsets", "--timeout", "90s")
    assert "node/worker-2 drained" in drained.stdout
    node = json.loads(cli.kubectl(kc, "get", "node", "worker-2", "-o", "json").stdout)
    assert node["spec"]["unschedulable"] is True
    left = json.loads(cli.kubectl(kc, "get", "pods", "-A", "--field-selector", "spec.nodeName=worker-2",
                                  "-o", "json").stdout)["items"]
    owners = {ref["kind"] for p in left for ref in p["metadata"].get("ownerReferences", [])}
    assert owners <= {"DaemonSet"}, "only DaemonSet pods stay on a drained node"
    cli.kubectl(kc, "uncordon", "worker-2")
    node = json.loads(cli.kubectl(kc, "get", "node", "worker-2", "-o", "json").stdout)
    assert not node["spec"].get("unschedulable")


def test_status_list_and_exec(demo: tuple[Cli, dict]) -> None:
    cli, _ = demo
    status = cli.status("demo")
    assert status["status"] == "running" and status["api_version"] == "v1.30.6"
    assert sorted(n["name"] for n in status["nodes"]) == NODES
    assert sorted(m["name"] for m in status["etcd_members"]) == ["cp-1", "cp-2", "cp-3"]
    assert all(p["alive"] for p in status["processes"].values()) and len(status["processes"]) == 6
    listed = json.loads(cli.run("sandbox", "list", "-o", "json").stdout)
    assert [(s["name"], s["status"]) for s in listed] == [("demo", "running")]
    version = json.loads(cli.exec("demo", "cp-1", "kubeadm", "version", "-o", "json").stdout)
    assert version["clientVersion"]["gitVersion"] == "v1.30.6"
    missing = cli.exec("demo", "worker-1", "cat", "/etc/kubernetes/admin.conf", check=False)
    assert missing.returncode == 1 and "/etc/kubernetes/admin.conf: No such file or directory" in missing.stderr
    registered = json.loads(cli.run("cluster", "list", "-o", "json").stdout)
    assert [(c["name"], c["transport"]) for c in registered] == [("demo", {"kind": "sandbox",
                                                                            "dir": status["dir"]})]


def _restore_member(cli: Cli, node: str) -> None:
    """The etcd disaster-recovery steps on one control-plane node, as an operator types them."""
    manifest = yaml.safe_load(cli.exec("demo", node, "cat", "/root/etcd.yaml").stdout)
    flags = dict(a[2:].split("=", 1) for a in manifest["spec"]["containers"][0]["command"][1:])
    cli.exec("demo", node, "etcdctl", "snapshot", "restore", "/root/snap.db", "--name", node,
             "--data-dir", "/var/lib/etcd-restored", "--initial-cluster", flags["initial-cluster"],
             "--initial-advertise-peer-urls", flags["initial-advertise-peer-urls"],
             "--initial-cluster-token", "restored")
    cli.exec("demo", node, "mv", "/var/lib/etcd", "/var/lib/etcd-before-restore")
    cli.exec("demo", node, "mv", "/var/lib/etcd-restored", "/var/lib/etcd")


def test_etcd_snapshot_restore_brings_a_deleted_object_back(demo: tuple[Cli, dict]) -> None:
    from upgrader.sandbox import SandboxTransport

    cli, info = demo
    kc = info["kubeconfig"]
    cli.kubectl(kc, "create", "configmap", "precious", "--from-literal=answer=42")
    saved = cli.exec("demo", "cp-1", "etcdctl", "snapshot", "save", "/root/snap.db")
    assert "Snapshot saved at /root/snap.db" in saved.stdout
    cli.kubectl(kc, "delete", "configmap", "precious")
    snapshot = SandboxTransport(info_dir(cli), "cp-1").read_file("/root/snap.db")
    for node in ("cp-2", "cp-3"):
        SandboxTransport(info_dir(cli), node).write_file("/root/snap.db", snapshot, 0o600)
    cps = ("cp-1", "cp-2", "cp-3")
    for node in cps:  # stop the control plane: static pod manifests out of the kubelet's sight
        cli.exec("demo", node, "mv", "/etc/kubernetes/manifests/kube-apiserver.yaml",
                 "/etc/kubernetes/manifests/etcd.yaml", "/root/")
    for node in cps:
        _restore_member(cli, node)
    for node in cps:
        cli.exec("demo", node, "mv", "/root/etcd.yaml", "/root/kube-apiserver.yaml", "/etc/kubernetes/manifests/")
    got = eventually(lambda: cli.kubectl(kc, "get", "configmap", "precious", "-o", "json", check=False).stdout,
                     timeout=60)
    assert json.loads(str(got))["data"] == {"answer": "42"}
    eventually(lambda: cli.status("demo")["ready"], timeout=60)


def info_dir(cli: Cli):
    from pathlib import Path

    return Path(cli.status("demo")["dir"])


def test_bad_input_exits_2_and_leaves_nothing_running(demo: tuple[Cli, dict]) -> None:
    cli, _info = demo
    lb_port = cli.status("demo")["ports"]["load_balancer"]
    cases = {
        ("bad1", "--version", "v1.30.99"): "unknown Kubernetes version v1.30.99",
        ("bad2", "--version", "v1.23.17"): "older than the sandbox supports",
        ("bad3", "--version", "banana"): "invalid version",
        ("bad4", "--control-planes", "0"): "at least one control-plane node",
        ("demo",): "already running",
        ("bad5", "--api-port", str(lb_port)): f"port {lb_port} (load balancer) is already in use",
        ("bad6", "--faults", "node-not-ready:nope@v1.31"): "no node 'nope'",
    }
    for args, message in cases.items():
        done = cli.run("sandbox", "up", *args, check=False)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
    listed = json.loads(cli.run("sandbox", "list", "-o", "json").stdout)
    assert [s["name"] for s in listed] == ["demo"]
    gone = cli.run("sandbox", "down", "never-existed")
    assert "nothing to stop" in gone.stdout
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "bad1" not in ps and "sandboxes/bad" not in ps
