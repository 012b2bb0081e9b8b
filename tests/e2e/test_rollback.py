"""`upgrader rollback` end to end on a sandbox: a manual rollback after a successful v1.31 -> v1.32 upgrade
(workers already at v1.32), through the rollback-last-upgrade runbook; the automatic one when the v1.32
API server never becomes ready; and a restore to a chosen snapshot through the restore-etcd-from-snapshot
runbook, stopped by an unreachable node, its child rollback killed and resumed, the runbook then finished."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest

from tests.e2e.apply_helpers import run_doc, steps_of, wait_for_step
from tests.e2e.conftest import Cli
from tests.e2e.crash_helpers import Ledger
from tests.e2e.run_checks import Background

WORKERS = ["worker-1", "worker-2"]


def _configmaps(cli: Cli, kc: str) -> set[str]:
    found = json.loads(cli.kubectl(kc, "get", "configmaps", "-n", "default", "-o", "json").stdout)["items"]
    return {c["metadata"]["name"] for c in found}


def _kubelets(cli: Cli, kc: str) -> dict[str, str]:
    nodes = json.loads(cli.kubectl(kc, "get", "nodes", "-o", "json").stdout)["items"]
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in nodes)
    assert not any(n["spec"].get("unschedulable") for n in nodes)
    return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes}


def _version(cli: Cli, kc: str) -> str:
    return str(json.loads(cli.kubectl(kc, "get", "--raw", "/version").stdout)["gitVersion"])


def _vanishing(preview: dict[str, Any]) -> set[tuple[str, str | None, str]]:
    return {(o["resource"], o["namespace"], o["name"]) for o in preview["loss"]["objects"]
            if o["change"] == "vanishes" and o["resource"] == "configmaps"}


@pytest.mark.timeout(900)
def test_manual_rollback_after_a_successful_upgrade_brings_v1_31_back_and_loses_exactly_the_later_writes(
        cli: Cli) -> None:
    info = cli.up("rb", "--version", "v1.31.4", "--control-planes", "1", "--workers", "2")
    kc = info["kubeconfig"]
    cli.kubectl(kc, "create", "configmap", "before-upgrade", "-n", "default", "--from-literal=k=v")
    plan = json.loads(cli.run("plan", "rb", "--to", "v1.32", "-o", "json").stdout)
    target = plan["target"]
    applied = json.loads(cli.run("apply", str(plan["id"]), "--yes", "--gate-interval", "0.5s", "--gate-passes", "2",
                                 "-o", "json", timeout=900).stdout)
    assert applied["status"] == "succeeded", applied["outcome"]
    assert set(_kubelets(cli, kc).values()) == {target}
    cli.kubectl(kc, "create", "configmap", "after-upgrade", "-n", "default", "--from-literal=k=v")

    preview = json.loads(cli.run("rollback", "rb", "--dry-run", "-o", "json").stdout)
    assert preview["target"]["version"] == "v1.31.4" and preview["rollback_of"] == applied["id"]
    assert preview["snapshot"]["verified"] is True
    assert preview["workers_drained_and_downgraded"] == {w: "v1.31.4" for w in WORKERS}
    assert {n: c["kubelet"] for n, c in preview["current"].items()} == {n: target for n in ["cp-1", *WORKERS]}
    assert _vanishing(preview) == {("configmaps", "default", "after-upgrade")}
    assert _version(cli, kc) == target  # a dry run changes nothing

    no_tty = cli.run("rollback", "rb", check=False)
    assert no_tty.returncode == 2 and "--yes" in no_tty.stderr

    # the incident commander's way: the rollback-last-upgrade runbook, its rollback a child run
    dry = json.loads(cli.run("runbook", "run", "rollback-last-upgrade", "--cluster", "rb", "--dry-run",
                             "-o", "json").stdout)
    assert dry["dry_run"] is True and dry["steps"][1]["action"] == "rollback-upgrade"
    assert any(line.startswith("what will be lost: ") for line in dry["steps"][1]["would"])  # shown first
    done = cli.run("runbook", "run", "rollback-last-upgrade", "--cluster", "rb", "--yes", "-o", "json", timeout=900)
    runbook = json.loads(done.stdout)
    assert runbook["status"] == "succeeded", runbook["outcome"]
    assert [s["action"] for s in runbook["steps"]] == ["observe-cluster", "rollback-upgrade", "wait-healthy",
                                                       "uncordon-left-by-upgrader"]
    rollback = run_doc(cli, runbook["steps"][1]["outputs"]["run"])
    assert rollback["status"] == "succeeded", rollback["outcome"]
    assert _version(cli, kc) == "v1.31.4"
    assert _kubelets(cli, kc) == {n: "v1.31.4" for n in ["cp-1", *WORKERS]}
    names = _configmaps(cli, kc)
    assert "before-upgrade" in names and "after-upgrade" not in names

    # the two runs are linked both ways; the upgrade run succeeded and keeps its status
    assert rollback["rollback_of"] == applied["id"]
    assert run_doc(cli, applied["id"])["rolled_back_by"] == [rollback["id"]]
    shown = run_doc(cli, rollback["id"])
    assert all(s["status"] == "succeeded" for s in shown["steps"])
    restore = steps_of(shown, "restore-etcd")[0]["outputs"]
    # the node has no etcd tools of its own: the snapshot's own etcd image ran the restore, through ctr
    assert restore["via"].startswith("image registry.k8s.io/etcd:"), restore
    assert restore["tool"] in ("etcdctl", "etcdutl") and isinstance(restore["bump_revision"], bool)
    assert [s["node"] for s in steps_of(shown, "drain")] == WORKERS
    # nothing deleted: the old manifests and etcd data are kept on the node under the run's id
    kept = cli.exec("rb", "cp-1", "ls", "/etc/kubernetes/upgrader-rollback-" + str(rollback["id"]) + "/manifests",
                    f"/var/lib/etcd.upgrader-rollback-{rollback['id']}").stdout
    assert "kube-apiserver.yaml" in kept and "member" in kept


@pytest.mark.timeout(900)
def test_apply_whose_gate_fails_rolls_back_automatically_and_exits_5(cli: Cli) -> None:
    # kubeadm waits this long for the apiserver the fault keeps unready, every time: 5 s, as test_apply_faults
    info = cli.up("auto", "--version", "v1.31.4", "--control-planes", "1", "--workers", "1", "--kubeadm-timeout",
                  "5s")
    kc = info["kubeconfig"]
    cli.kubectl(kc, "create", "configmap", "before-snapshot", "-n", "default", "--from-literal=k=v")
    plan = json.loads(cli.run("plan", "auto", "--to", "v1.32", "-o", "json").stdout)
    cli.run("sandbox", "fault", "auto", "apiserver-unready@v1.32")
    with Background(cli, "apply", str(plan["id"]), "--yes", "--gate-interval", "0.5s", "--gate-passes", "2",
                    "--gate-timeout", "20s", "-o", "json", name="apply") as applying:
        # the object written between the snapshot and the rollback: once the hop's snapshot is taken
        wait_for_step(cli, None, action="upgrade-kubeadm")
        cli.kubectl(kc, "create", "configmap", "after-snapshot", "-n", "default", "--from-literal=k=v")
        done = applying.wait(900)
    assert done.code == 5, done.out + done.err
    failed = json.loads(done.out)
    assert failed["status"] == "rolled_back"
    auto = failed["outcome"]["auto_rollback"]
    assert auto["ok"] is True and auto["snapshot_id"] == failed["outcome"]["snapshot_id"]
    assert "runbook" not in failed["outcome"]  # back at the snapshot: no incident runbook to follow
    rollback = run_doc(cli, auto["run"])
    assert rollback["status"] == "succeeded" and rollback["rollback_of"] == failed["id"]
    assert run_doc(cli, failed["id"])["rolled_back_by"] == [rollback["id"]]
    cli.run("sandbox", "fault", "auto", "--clear")
    assert _version(cli, kc) == "v1.31.4"
    assert _kubelets(cli, kc) == {"cp-1": "v1.31.4", "worker-1": "v1.31.4"}
    names = _configmaps(cli, kc)
    assert "before-snapshot" in names and "after-snapshot" not in names


@pytest.mark.timeout(900)
def test_a_corrupt_snapshot_is_refused_an_unreachable_node_stops_it_and_resume_finishes_a_killed_one(
        cli: Cli) -> None:
    kc = cli.up("rk", "--version", "v1.31.4", "--control-planes", "1", "--workers", "1")["kubeconfig"]
    cli.kubectl(kc, "create", "configmap", "kept", "-n", "default", "--from-literal=k=v")
    good = json.loads(cli.run("snapshot", "create", "rk", "-o", "json").stdout)
    cli.kubectl(kc, "create", "configmap", "later", "-n", "default", "--from-literal=k=v")
    bad = json.loads(cli.run("snapshot", "create", "rk", "-o", "json").stdout)
    with open(bad["path"], "r+b") as f:  # one flipped byte in the middle of the database
        f.seek(bad["size"] // 2)
        byte = f.read(1)
        f.seek(bad["size"] // 2)
        f.write(bytes([byte[0] ^ 0xFF]))

    refused = cli.run("rollback", "rk", "--to", str(bad["id"]), "--yes", check=False)
    assert refused.returncode == 8 and f"snapshot {bad['id']} failed verification" in refused.stderr, refused.stderr
    assert json.loads(cli.run("runs", "list", "rk", "-o", "json").stdout) == []  # nothing was touched
    assert "later" in _configmaps(cli, kc)
    none = cli.run("rollback", "rk", check=False)  # no upgrade run: nothing to go back to by default
    assert none.returncode == 3 and "upgrader snapshot create rk" in none.stderr

    # the control-plane node drops off the network: the restore-etcd-from-snapshot runbook's restore (a
    # rollback run, its child) stops (exit 6) saying where each node is
    cli.run("sandbox", "fault", "rk", "node-unreachable:cp-1")
    lost = cli.run("runbook", "run", "restore-etcd-from-snapshot", "--cluster", "rk", "--param",
                   f"snapshot={good['id']}", "--yes", "-o", "json", check=False, timeout=600)
    assert lost.returncode == 6, lost.stderr
    book = json.loads(lost.stdout)
    assert book["status"] == "failed" and book["outcome"]["step"] == 3, book["outcome"]
    chosen = book["steps"][1]["outputs"]  # preview-restore: the snapshot chosen, verified, and the loss
    assert chosen["snapshot"]["id"] == good["id"] and chosen["snapshot"]["verified"] is True
    run_id = next(r["id"] for r in json.loads(cli.run("runs", "list", "rk", "-o", "json").stdout)
                  if r["id"] != book["id"])
    failed = run_doc(cli, run_id)
    assert failed["status"] == "failed" and failed["outcome"]["runbook"]["name"] == "restore-etcd-from-snapshot"
    assert "node cp-1 is unreachable" in failed["outcome"]["error"] and failed["outcome"]["deleted"] == "nothing"
    assert failed["outcome"]["nodes"]["cp-1"][0] == "stop-control-plane: failed"
    assert f"the restore run {run_id} failed" in book["outcome"]["error"]
    cli.run("sandbox", "fault", "rk", "--clear")

    ledger = Ledger(cli.home / "ledger.db")
    with Background(cli, "resume", str(run_id), "--yes", "-o", "json", name="rb") as rolling:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if ("restore-etcd", "cp-1", "running") in ledger.steps(run_id).values():
                break
            time.sleep(0.01)
        os.kill(rolling.pid, signal.SIGKILL)  # the rollback dies in the middle of its etcd restore
        rolling.wait()
    assert run_id is not None
    resumed = cli.run("resume", str(run_id), "--yes", "-o", "json", timeout=600)
    run = json.loads(resumed.stdout)
    assert run["status"] == "succeeded", run["outcome"]
    names = _configmaps(cli, kc)
    assert "kept" in names and "later" not in names
    assert _version(cli, kc) == "v1.31.4"
    assert _kubelets(cli, kc) == {"cp-1": "v1.31.4", "worker-1": "v1.31.4"}
    assert steps_of(run_doc(cli, run_id), "restore-etcd")[0]["status"] == "succeeded"
    # the runbook's run, resumed, accepts its finished child and checks the cluster is healthy
    finished = json.loads(cli.run("resume", str(book["id"]), "--yes", "-o", "json", timeout=600).stdout)
    assert finished["status"] == "succeeded", finished["outcome"]
    assert finished["steps"][2]["outputs"]["run"] == run_id and finished["steps"][2]["outputs"]["observed"] is True
    assert _kubelets(cli, kc) == {"cp-1": "v1.31.4", "worker-1": "v1.31.4"}
