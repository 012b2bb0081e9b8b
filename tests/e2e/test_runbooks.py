"""The control-plane runbooks end to end on ONE sandbox (3 control planes, etcd on each, no worker),
through the real CLI, chained: each test injects its fault, checks the sandbox is in the state a real
cluster would be in (what crictl, etcdctl, systemctl and journalctl show), runs the matching runbook
with --yes and checks the cluster healthy again (/readyz, every node Ready, 3 healthy etcd members), so
the next test starts from a healthy cluster.

- apiserver-crashloop:cp-2 -> apiserver-crashloop-after-upgrade (kubeadm's backup manifest put back);
- etcd-member-data-lost:cp-3 -> etcd-member-lost (removed, data aside, re-added as a learner, promoted);
- kubelet-flag-removed:cp-1 -> node-stuck-not-ready (the flag removed, the kubelet restarted).

The nodes get etcdctl (`--node-etcd-tools`): etcd-member-lost runs it on a healthy control-plane node.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.apply_helpers import api_get, server_of
from tests.e2e.conftest import Cli, eventually

NAME = "rb"
NODES = ("cp-1", "cp-2", "cp-3")


@pytest.fixture(scope="module")
def sandbox(mcli: Cli) -> dict[str, Any]:
    return mcli.up(NAME, "--control-planes", "3", "--workers", "0", "--node-etcd-tools")


def runbook(cli: Cli, name: str, node: str) -> dict[str, Any]:
    done = cli.run("runbook", "run", name, "--cluster", NAME, "--param", f"node={node}", "--yes", "-o", "json",
                   timeout=600)
    doc: dict[str, Any] = json.loads(done.stdout)
    assert doc["status"] == "succeeded", doc
    return doc


def nodes_ready(server: str) -> dict[str, bool]:
    items = api_get(server, "/api/v1/nodes")["items"]
    return {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in n["status"]["conditions"]) for n in items}


def etcd_members(cli: Cli) -> list[dict[str, Any]]:
    doc = json.loads(cli.exec(NAME, "cp-1", "etcdctl", "member", "list", "-w", "json").stdout)
    return list(doc["members"])


def assert_healthy(cli: Cli, sandbox: dict[str, Any]) -> None:
    server = server_of(sandbox["kubeconfig"])

    def healthy() -> bool:
        assert cli.kubectl(sandbox["kubeconfig"], "get", "--raw", "/readyz").stdout.strip() == "ok"
        assert nodes_ready(server) == dict.fromkeys(NODES, True)
        health = cli.exec(NAME, "cp-1", "etcdctl", "endpoint", "health", "--cluster", check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        return True

    eventually(healthy, timeout=90, every=1)
    members = etcd_members(cli)
    assert sorted(m.get("name", "") for m in members) == list(NODES)
    assert not any(m.get("isLearner") for m in members)
    for node in NODES:  # every API server answers, not only the one the load balancer picked
        port = cli.status(NAME)["ports"]["apiserver"][node]
        assert api_get(f"http://127.0.0.1:{port}", "/version")["gitVersion"]


def exited_apiserver(cli: Cli, node: str) -> dict[str, Any]:
    doc = json.loads(cli.exec(NAME, node, "crictl", "ps", "-a", "--name", "kube-apiserver", "-o", "json").stdout)
    newest = max(doc["containers"], key=lambda c: int(c["createdAt"]))
    assert newest["state"] == "CONTAINER_EXITED", newest
    return dict(newest)


@pytest.mark.timeout(420)
def test_a_crash_looping_apiserver_gets_kubeadm_backup_back(mcli: Cli, sandbox: dict[str, Any]) -> None:
    mcli.run("sandbox", "fault", NAME, "apiserver-crashloop:cp-2")
    first = eventually(lambda: exited_apiserver(mcli, "cp-2"), timeout=30)
    assert isinstance(first, dict)
    logs = mcli.exec(NAME, "cp-2", "crictl", "logs", "--tail", "5", first["id"])
    assert "Error: unknown flag: --insecure-port" in logs.stderr
    eventually(lambda: exited_apiserver(mcli, "cp-2")["metadata"]["attempt"] > first["metadata"]["attempt"],
               timeout=30)  # the kubelet keeps restarting it
    port = mcli.status(NAME)["ports"]["apiserver"]["cp-2"]
    with pytest.raises(OSError):  # nothing listens: /readyz through that node fails
        api_get(f"http://127.0.0.1:{port}", "/readyz")
    backups = mcli.exec(NAME, "cp-2", "ls", "/etc/kubernetes/tmp").stdout.split()
    assert any(b.startswith("kubeadm-backup-manifests-") for b in backups)

    run = runbook(mcli, "apiserver-crashloop-after-upgrade", "cp-2")
    assert [s["status"] for s in run["steps"]] == ["succeeded"] * len(run["steps"])
    manifest = mcli.exec(NAME, "cp-2", "cat", "/etc/kubernetes/manifests/kube-apiserver.yaml").stdout
    assert "--insecure-port" not in manifest
    quarantined = mcli.exec(NAME, "cp-2", "sh", "-c", "cat /etc/kubernetes/tmp/upgrader-quarantine-*/"
                            "kube-apiserver.yaml").stdout
    assert "--insecure-port=0" in quarantined, "the broken manifest is kept outside manifests/"
    assert_healthy(mcli, sandbox)


@pytest.mark.timeout(480)
def test_an_etcd_member_that_lost_its_data_is_replaced(mcli: Cli, sandbox: dict[str, Any]) -> None:
    before = {m["name"]: m["ID"] for m in etcd_members(mcli)}
    mcli.run("sandbox", "fault", NAME, "etcd-member-data-lost:cp-3")

    def cp3_unhealthy() -> bool:
        health = mcli.exec(NAME, "cp-1", "etcdctl", "endpoint", "health", "--cluster", check=False)
        return health.returncode != 0 and "Error: unhealthy cluster" in health.stderr

    eventually(cp3_unhealthy, timeout=30)
    for node in ("cp-1", "cp-2"):  # the others keep quorum
        assert mcli.exec(NAME, node, "etcdctl", "endpoint", "health", check=False).returncode == 0

    runbook(mcli, "etcd-member-lost", "cp-3")
    after = {m["name"]: m["ID"] for m in etcd_members(mcli)}
    assert after["cp-1"] == before["cp-1"] and after["cp-2"] == before["cp-2"]
    assert after["cp-3"] != before["cp-3"], "the lost member was replaced by a new one"
    kept = mcli.exec(NAME, "cp-3", "sh", "-c", "ls -d /var/lib/etcd.lost-*").stdout.strip()
    assert kept, "the lost member's data dir is moved aside, never deleted"
    assert_healthy(mcli, sandbox)


@pytest.mark.timeout(420)
def test_a_kubelet_refusing_a_removed_flag_is_fixed(mcli: Cli, sandbox: dict[str, Any]) -> None:
    server = server_of(sandbox["kubeconfig"])
    mcli.run("sandbox", "fault", NAME, "kubelet-flag-removed:cp-1")
    eventually(lambda: nodes_ready(server)["cp-1"] is False, timeout=60)
    status = mcli.exec(NAME, "cp-1", "systemctl", "status", "kubelet", check=False)
    assert status.returncode == 3 and "activating (auto-restart)" in status.stdout
    journal = mcli.exec(NAME, "cp-1", "journalctl", "-u", "kubelet", "-n", "20", "--no-pager").stdout
    assert 'failed to parse kubelet flag: unknown flag: --container-runtime"' in journal

    run = runbook(mcli, "node-stuck-not-ready", "cp-1")
    conditions = run["steps"][0]
    assert conditions["outputs"]["cause"] == "removed-flag", conditions
    flags = mcli.exec(NAME, "cp-1", "cat", "/var/lib/kubelet/kubeadm-flags.env").stdout
    assert "--container-runtime=" not in flags and "--container-runtime-endpoint=" in flags
    assert mcli.exec(NAME, "cp-1", "systemctl", "is-active", "kubelet").stdout.strip() == "active"
    assert_healthy(mcli, sandbox)
