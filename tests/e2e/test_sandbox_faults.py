"""Each fault kind, shown the way an operator meets it: a failing command, its message, the cluster's state."""

from __future__ import annotations

import json

from tests.e2e.conftest import Cli, eventually

REPO = "sed -i 's|core:/stable:/v1.30/deb|core:/stable:/v1.31/deb|' /etc/apt/sources.list.d/kubernetes.list"
KUBEADM = ("apt-mark unhold kubeadm && apt-get update && apt-get install -y kubeadm='1.31.4-1.1' "
           "&& apt-mark hold kubeadm")
RESTORED = "couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state."


def _kubeadm_131(cli: Cli, name: str, node: str = "cp-1") -> None:
    cli.exec(name, node, "sh", "-c", f"{REPO} && {KUBEADM}")


def _apiserver_image(cli: Cli, name: str) -> str:
    manifest = cli.exec(name, "cp-1", "cat", "/etc/kubernetes/manifests/kube-apiserver.yaml").stdout
    return next(line.split("image:")[1].strip() for line in manifest.splitlines() if "image:" in line)


def test_kubeadm_apply_fails_and_restores_the_old_manifests(cli: Cli) -> None:
    cli.up("f1", "--control-planes", "1", "--workers", "1", "--faults", "kubeadm-apply-fails@v1.31",
           "--kubeadm-timeout", "3s")
    _kubeadm_131(cli, "f1")
    failed = cli.exec("f1", "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes", check=False)
    assert failed.returncode == 1
    assert (f"[upgrade/apply] FATAL: {RESTORED} Errors faced: static Pod hash for component kube-apiserver on Node "
            "cp-1 did not change after 3s: timed out waiting for the condition") in failed.stderr
    assert _apiserver_image(cli, "f1") == "registry.k8s.io/kube-apiserver:v1.30.6"
    backups = cli.exec("f1", "cp-1", "ls", "/etc/kubernetes/tmp").stdout
    assert "kubeadm-backup-manifests-" in backups and "kubeadm-backup-etcd-" in backups
    eventually(lambda: cli.status("f1")["api_version"] == "v1.30.6" and cli.status("f1")["ready"])


def test_apiserver_unready_at_the_new_minor_fails_the_apply(cli: Cli) -> None:
    cli.up("f2", "--control-planes", "1", "--workers", "1", "--faults", "apiserver-unready@v1.31",
           "--kubeadm-timeout", "3s")
    _kubeadm_131(cli, "f2")
    failed = cli.exec("f2", "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes", check=False)
    assert failed.returncode == 1
    assert (f"{RESTORED} Errors faced: static Pod for component kube-apiserver on Node cp-1 did not become ready "
            "after 3s") in failed.stderr
    assert _apiserver_image(cli, "f2") == "registry.k8s.io/kube-apiserver:v1.30.6"

    def back_at_the_old_version() -> bool:
        status = cli.status("f2")
        assert status["api_version"] == "v1.30.6" and status["ready"], {k: status.get(k) for k in (
            "api_version", "ready", "processes", "backends", "nodes")}  # shown if it never gets there
        return True

    # The restored kube-apiserver (and, on a busy machine, its etcd) come back through the kubelet.
    eventually(back_at_the_old_version, timeout=60)


def test_node_not_ready_with_a_kubelet_of_that_minor(cli: Cli) -> None:
    info = cli.up("f3", "--control-planes", "1", "--workers", "1", "--faults", "node-not-ready:worker-1@v1.31")
    cli.exec("f3", "worker-1", "sh", "-c", f"{REPO} && apt-get update && apt-mark unhold kubelet && "
             "apt-get install -y kubelet=1.31.4-1.1 && systemctl daemon-reload && systemctl restart kubelet")

    def not_ready() -> dict:
        node = json.loads(cli.kubectl(info["kubeconfig"], "get", "node", "worker-1", "-o", "json").stdout)
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        restarted = node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.4"
        return ready if restarted and "PLEG" in ready["message"] else {}

    ready = eventually(not_ready)  # past the restart's own moment of NotReady, it stays NotReady
    assert ready["status"] == "False" and ready["reason"] == "KubeletNotReady"  # type: ignore[index]
    assert ready["message"].startswith("PLEG is not healthy")  # type: ignore[index]
    assert "worker-1   NotReady" in cli.kubectl(info["kubeconfig"], "get", "nodes").stdout
    assert cli.exec("f3", "worker-1", "systemctl", "is-active", "kubelet").stdout.strip() == "active"


def test_drain_blocked_by_a_pod_disruption_budget(cli: Cli) -> None:
    info = cli.up("f4", "--control-planes", "1", "--workers", "2")
    kc = info["kubeconfig"]
    cli.run("sandbox", "fault", "f4", "drain-blocked:worker-2")

    def pinned_running() -> bool:
        pods = json.loads(cli.kubectl(kc, "get", "pods", "-n", "demo", "-l", "app=pinned-worker-2",
                                      "-o", "json").stdout)["items"]
        return any(p["status"].get("phase") == "Running" and p["spec"].get("nodeName") == "worker-2" for p in pods)

    eventually(pinned_running)
    drained = cli.kubectl(kc, "drain", "worker-2", "--ignore-daemonsets", "--timeout", "8s", check=False)
    assert drained.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in drained.stderr
    assert "global timeout reached: 8s" in drained.stderr


def test_node_unreachable_fails_like_ssh(cli: Cli) -> None:
    from pathlib import Path

    import pytest

    from upgrader.errors import NodeUnreachableError
    from upgrader.sandbox import SandboxTransport

    cli.up("f5", "--control-planes", "1", "--workers", "1")
    cli.run("sandbox", "fault", "f5", "node-unreachable:worker-1")
    done = cli.exec("f5", "worker-1", "kubeadm", "version", check=False)
    assert done.returncode == 255
    assert done.stderr.strip() == "ssh: connect to host worker-1 port 22: No route to host"
    assert cli.exec("f5", "cp-1", "true").returncode == 0
    transport = SandboxTransport(Path(cli.status("f5")["dir"]), "worker-1")
    with pytest.raises(NodeUnreachableError, match="No route to host"):
        transport.read_file("/var/lib/kubelet/config.yaml")
    cli.run("sandbox", "fault", "f5", "node-unreachable:worker-1", "--clear")
    assert cli.exec("f5", "worker-1", "true").returncode == 0


def test_etcd_member_down(cli: Cli) -> None:
    cli.up("f6", "--control-planes", "3", "--workers", "0", "--node-etcd-tools")
    cli.run("sandbox", "fault", "f6", "etcd-member-down:cp-3")

    def cp3_down() -> bool:
        members = {m["name"]: m["healthy"] for m in cli.status("f6")["etcd_members"]}
        return members == {"cp-1": True, "cp-2": True, "cp-3": False}

    eventually(cp3_down)
    health = cli.exec("f6", "cp-1", "etcdctl", "endpoint", "health", "--cluster", check=False)
    assert health.returncode == 1 and "is unhealthy" in health.stderr
    assert cli.status("f6")["ready"], "two of three members keep quorum: the API stays up"
    _kubeadm_131(cli, "f6")
    failed = cli.exec("f6", "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes", check=False)
    assert failed.returncode == 1 and "etcd cluster is not healthy" in failed.stderr


def test_faults_that_can_never_let_up_succeed_are_refused_at_once(cli: Cli) -> None:
    cases = {
        ("--control-planes", "1", "--faults", "apiserver-unready"): "every kube-apiserver would start at v1.30.6",
        ("--control-planes", "2", "--faults", "apiserver-unready@v1.30"): "every kube-apiserver would start at v1.30.6",
        ("--control-planes", "1", "--faults", "etcd-member-down:cp-1"): "1 of 1 etcd members down leaves no quorum",
        ("--control-planes", "3", "--faults", "etcd-member-down:cp-1", "--faults", "etcd-member-down:cp-3"):
            "2 of 3 etcd members down leaves no quorum",
    }
    cli.started.append("never")  # stopped at teardown should a start ever get going
    for args, message in cases.items():
        done = cli.run("sandbox", "up", "never", "--workers", "0", "--wait", "2m", *args, check=False, timeout=20)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "could never become healthy" in done.stderr, (args, done.stderr)
    assert not (cli.home / "upgrader" / "sandboxes" / "never").exists()
    assert json.loads(cli.run("sandbox", "list", "-o", "json").stdout) == []
