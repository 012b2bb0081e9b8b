"""`upgrader apply` on RPM nodes: dnf, the pkgs.k8s.io rpm repository and its `exclude=` hold, v1.31 -> v1.32."""

from __future__ import annotations

import json

import pytest

from tests.e2e.apply_helpers import WORKLOAD, Sampler, max_overlap, run_doc, server_of, steps_of
from tests.e2e.conftest import Cli

NODES = ["cp-1", "worker-1", "worker-2"]


@pytest.mark.timeout(900)
def test_apply_upgrades_rhel_nodes_with_dnf(cli: Cli) -> None:
    info = cli.up("rh", "--os", "rhel", "--version", "v1.31.4", "--control-planes", "1", "--workers", "2")
    kc = info["kubeconfig"]
    (cli.home / "web.yaml").write_text(WORKLOAD)
    cli.kubectl(kc, "apply", "--validate=false", "-f", str(cli.home / "web.yaml"))
    cli.kubectl(kc, "rollout", "status", "deployment/web", "--timeout", "60s")
    plan = json.loads(cli.run("plan", "rh", "--to", "v1.32", "-o", "json").stdout)
    target = plan["target"]

    dry = json.loads(cli.run("apply", str(plan["id"]), "--dry-run", "-o", "json").stdout)
    would = [line for step in dry["steps"] for line in step["would"]]
    assert any(line.startswith("dnf install -y kubeadm-") and line.endswith("--disableexcludes=kubernetes")
               for line in would)
    assert not any("apt" in line for line in would)

    with Sampler(server_of(kc), ["worker-1", "worker-2"]) as sampled:
        done = cli.run("apply", str(plan["id"]), "--yes", "--gate-interval", "1s", "-o", "json", timeout=900)
    run = json.loads(done.stdout)
    assert run["status"] == "succeeded", run["outcome"]

    nodes = json.loads(cli.kubectl(kc, "get", "nodes", "-o", "json").stdout)["items"]
    assert {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {
        n: target for n in NODES}
    shown = run_doc(cli, run["id"])
    assert all(s["status"] == "succeeded" for s in shown["steps"])
    # dnf installed the exact rpm builds, and the repository still excludes the packages (their hold)
    for step in steps_of(shown, "upgrade-kubelet"):
        assert step["outputs"]["manager"] == "dnf"
        assert step["outputs"]["packages"] == {"kubelet": f"{target[1:]}-150500.1.1",
                                               "kubectl": f"{target[1:]}-150500.1.1"}
    for node in NODES:
        repo = cli.exec("rh", node, "cat", "/etc/yum.repos.d/kubernetes.repo").stdout
        assert "baseurl=https://pkgs.k8s.io/core:/stable:/v1.32/rpm/" in repo
        assert "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni" in repo
        rpm = cli.exec("rh", node, "rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}\\n", "kubeadm").stdout.strip()
        assert rpm == f"{target[1:]}-150500.1.1"
    snapshot = steps_of(shown, "snapshot")[0]["outputs"]["snapshot_id"]
    assert json.loads(cli.run("snapshot", "verify", str(snapshot), "-o", "json").stdout)["ok"] is True
    assert max_overlap(shown, ["worker-1", "worker-2"]) <= 1
    assert min(sampled.web_ready) >= 2, sampled.web_ready
