"""The rollback-safe two-step upgrade end to end on a sandbox (1 control plane + 1 worker), v1.33 -> v1.34:
step one leaves the new binaries emulating v1.33 with etcd still at 3.5 and the run soaking; finalize
is refused while etcd is below its 3.5.32 prerequisite, then raises the emulation and moves etcd."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.apply_helpers import api_get, run_doc, server_of, steps_of
from tests.e2e.conftest import Cli, eventually
from tests.e2e.run_checks import without_workers_budget

NAME = "twostep"


def _etcd_image(cli: Cli) -> str:
    text = cli.exec(NAME, "cp-1", "cat", "/etc/kubernetes/manifests/etcd.yaml").stdout
    found = re.search(r"image:\s*\S+/etcd:(\S+)", text)
    assert found, text
    return found.group(1)


def _cluster_configuration(cli: Cli, kubeconfig: str) -> str:
    cm = json.loads(cli.kubectl(kubeconfig, "-n", "kube-system", "get", "configmap", "kubeadm-config",
                                "-o", "json").stdout)
    return str(cm["data"]["ClusterConfiguration"])


def _kubelets(cli: Cli, kubeconfig: str) -> dict[str, str]:
    nodes = json.loads(cli.kubectl(kubeconfig, "get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes}


def set_etcd_image(cli: Cli, kubeconfig: str, tag: str) -> None:
    """Edit cp-1's etcd manifest to ``tag`` (as etcd.local.imageTag would) and wait until etcd runs it.

    The kubelet restarts etcd at its next sync: a /readyz alone can still answer from the old etcd
    before that, and the next command would then meet the restart."""
    manifest = _node_file(cli, "cp-1", "/etc/kubernetes/manifests/etcd.yaml")
    manifest.write_text(manifest.read_text().replace(f"etcd:{_etcd_image(cli)}", f"etcd:{tag}"))
    eventually(lambda: _etcd_pod_ready_at(cli, kubeconfig, tag), timeout=60)
    eventually(lambda: cli.kubectl(kubeconfig, "get", "--raw", "/readyz", check=False).returncode == 0, timeout=60)


def _etcd_pod_ready_at(cli: Cli, kubeconfig: str, tag: str) -> bool:
    """etcd-cp-1's mirror pod shows the manifest at ``tag`` and that etcd is ready."""
    got = cli.kubectl(kubeconfig, "-n", "kube-system", "get", "pod", "etcd-cp-1", "-o", "json", check=False)
    if got.returncode != 0:
        return False
    pod = json.loads(got.stdout)
    images = [c["image"] for c in pod["spec"]["containers"]]
    ready = [c["status"] for c in pod.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
    return len(images) == 1 and images[0].endswith(f"/etcd:{tag}") and ready == ["True"]


def _node_file(cli: Cli, node: str, path: str) -> Path:
    return cli.home / "upgrader" / "sandboxes" / NAME / "nodes" / node / path.lstrip("/")


@pytest.mark.timeout(900)
def test_two_step_soaks_emulating_the_old_minor_and_finalize_raises_it_and_etcd(cli: Cli) -> None:
    info = cli.up(NAME, "--version", "v1.33", "--control-planes", "1", "--workers", "1")
    kc = info["kubeconfig"]
    without_workers_budget(cli, kc)  # one worker: the demo budget would block its drain after finalize
    server = server_of(kc)
    source = api_get(server, "/version")["gitVersion"]

    plan = json.loads(cli.run("plan", NAME, "--to", "v1.34", "--two-step", "--soak", "2h", "-o", "json").stdout)
    (hop,) = plan["hops"]
    assert hop["two_step"] == {"emulate": "v1.33", "hold_etcd": True}, plan["warnings"]
    assert plan["two_step"] == {"soak_seconds": 7200.0}
    by_action = {s["action"]: s for s in plan["steps"]}
    for action in ("emulated-upgrade-apply", "soak"):
        assert by_action[action]["reversibility"] == "emulated-version"
    finalize_n = by_action["finalize-emulated-version"]["n"]
    assert {(p["kind"], p["step"]) for p in plan["points_of_no_return"]} == {
        ("emulated-version-raised", finalize_n), ("etcd-minor-upgrade", finalize_n),
        ("storage-version-migration", finalize_n)}
    shown = cli.run("plans", "show", str(plan["id"])).stdout
    assert "roll binary back (emulation)" in shown and "points of no return" in shown
    for bad in ("abc", "200h", "-1s"):
        refused = cli.run("plan", NAME, "--to", "v1.34", "--two-step", "--soak", bad, check=False)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    dry = json.loads(cli.run("apply", str(plan["id"]), "--dry-run", "-o", "json").stdout)
    would = {s["action"]: " ".join(s["would"]) for s in dry["steps"]}
    assert "--etcd-upgrade=false" in would["emulated-upgrade-apply"] and "emulated-version=1.33" in would[
        "emulated-upgrade-apply"]

    # step one: the run pauses soaking, apply exits 0 and says what comes next
    done = cli.run("apply", str(plan["id"]), "--yes", "--gate-interval", "0.5s", "--gate-passes", "2", "-o", "json",
                   timeout=600)
    run = json.loads(done.stdout)
    assert run["status"] == "interrupted" and run["outcome"]["soaking"]["emulated"] == "v1.33", run["outcome"]
    assert any(n.startswith(f"upgrader finalize {run['id']}") for n in run["outcome"]["next"])
    assert any(n.startswith(f"upgrader rollback {NAME}") for n in run["outcome"]["next"])
    version = api_get(server, "/version")
    assert version["gitVersion"] == plan["target"] and version["emulationMinor"] == "33", version
    etcd_before = _etcd_image(cli)
    assert etcd_before.startswith("3.5."), etcd_before
    assert "emulated-version" in _cluster_configuration(cli, kc)
    assert _kubelets(cli, kc) == {"cp-1": source, "worker-1": source}  # kubelets wait for finalize

    # finalize refuses while etcd is below 3.5.32, changing nothing
    refused = cli.run("finalize", str(run["id"]), "--yes", check=False, timeout=300)
    assert refused.returncode == 4, refused.stderr
    assert "3.5.32" in refused.stderr and "still soaking" in refused.stderr
    assert api_get(server, "/version")["emulationMinor"] == "33"
    assert _etcd_image(cli) == etcd_before

    # the operator moves etcd to the prerequisite patch (as etcd.local.imageTag would), then finalizes
    set_etcd_image(cli, kc, "3.5.32-0")
    done = cli.run("finalize", str(run["id"]), "--yes", "-o", "json", timeout=600)
    run = json.loads(done.stdout)
    assert run["status"] == "succeeded", run["outcome"]
    version = api_get(server, "/version")
    assert version["gitVersion"] == plan["target"] and version["emulationMinor"] == "34", version
    assert _etcd_image(cli).startswith("3.6."), _etcd_image(cli)
    assert "emulated-version" not in _cluster_configuration(cli, kc)
    assert _kubelets(cli, kc) == {"cp-1": plan["target"], "worker-1": plan["target"]}

    recorded = run_doc(cli, run["id"])
    (soak,) = steps_of(recorded, "soak")
    assert soak["status"] == "succeeded" and soak["outputs"]["ended_by"] == "finalize" and soak["outputs"]["early"]
    kinds = [e["kind"] for e in json.loads(cli.run("history", NAME, "-o", "json").stdout)["events"]]
    assert "soak-started" in kinds and "point-of-no-return" in kinds

    # a run that is not soaking, or none at all: one line, exit 2
    again = cli.run("finalize", str(run["id"]), "--yes", check=False)
    assert again.returncode == 2 and "is not soaking" in again.stderr, again.stderr
    missing = cli.run("finalize", "999", "--yes", check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr


@pytest.mark.timeout(900)
def test_two_step_with_two_control_planes_moves_both_and_keeps_etcd_when_its_minor_stays(cli: Cli) -> None:
    info = cli.up("two", "--version", "v1.34", "--control-planes", "2", "--workers", "0")
    kc = info["kubeconfig"]
    without_workers_budget(cli, kc)
    server = server_of(kc)
    plan = json.loads(cli.run("plan", "two", "--to", "v1.35", "--two-step", "-o", "json").stdout)
    assert plan["hops"][0]["two_step"] == {"emulate": "v1.34", "hold_etcd": False}, plan["warnings"]
    assert [s["node"] for s in plan["steps"] if s["action"] == "emulated-upgrade-node"] == ["cp-2"]
    assert {p["kind"] for p in plan["points_of_no_return"]} == {"emulated-version-raised",
                                                                 "storage-version-migration"}
    run = json.loads(cli.run("apply", str(plan["id"]), "--yes", "--gate-interval", "0.5s", "--gate-passes", "2",
                             "-o", "json", timeout=600).stdout)
    assert run["outcome"]["soaking"]["etcd_held"] is False, run["outcome"]
    for node in ("cp-1", "cp-2"):
        text = cli.exec("two", node, "cat", "/etc/kubernetes/manifests/kube-apiserver.yaml").stdout
        assert "--emulated-version=1.34" in text and f"kube-apiserver:{plan['target']}" in text
    assert api_get(server, "/version")["emulationMinor"] == "34"

    run = json.loads(cli.run("finalize", str(run["id"]), "--yes", "-o", "json", timeout=600).stdout)
    assert run["status"] == "succeeded", run["outcome"]
    for node in ("cp-1", "cp-2"):
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            text = cli.exec("two", node, "cat", f"/etc/kubernetes/manifests/{component}.yaml").stdout
            assert "--emulated-version" not in text
    assert api_get(server, "/version")["emulationMinor"] == "35"
