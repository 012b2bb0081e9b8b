"""Every sandbox fault, met by `upgrader apply` the way an operator meets it, ends in a stopped run with an
accurate record and a clear next step; fixing the cause and `upgrader resume RUN` finishes the run.

A fault already visible before the run is refused by preflight (exit 4, no run recorded); one that strikes
after preflight fails its step (exit 6). Faults that must strike mid-run are injected with `sandbox fault`
once the ledger shows the step they aim at running. Two sandboxes serve the whole module: one control plane
with two workers (one batch of two, --max-unavailable 2), and three control planes for etcd's quorum.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.apply_helpers import run_doc, steps_of
from tests.e2e.conftest import Cli, eventually
from tests.e2e.run_checks import (
    Background,
    check_finished,
    check_stopped,
    latest_run,
    node_objects,
    wait_for,
    without_workers_budget,
)

# --no-auto-rollback: these tests are about the stopped run and resume (test_rollback.py has the rollback)
FAST = ("--gate-timeout", "20s", "--drain-timeout", "15s", "--gate-interval", "1s", "--no-auto-rollback")
KUBEADM_FAILED = "failed on cp-1 (exit 1)"


@pytest.fixture(scope="module")
def wk(mcli: Cli) -> dict[str, Any]:
    """v1.30 with one control plane and two workers; kubeadm gives up on a static pod after 5 s."""
    return mcli.up("wk", "--version", "v1.30.6", "--control-planes", "1", "--workers", "2", "--kubeadm-timeout", "5s")


@pytest.fixture(scope="module")
def e3(mcli: Cli) -> dict[str, Any]:
    """Three control planes (three etcd members: one may stop without losing quorum), no workers."""
    info = mcli.up("e3", "--version", "v1.30.6", "--control-planes", "3", "--workers", "0", "--kubeadm-timeout", "5s")
    without_workers_budget(mcli, info["kubeconfig"])
    return info


def ledger(cli: Cli) -> str:
    return cli.env["UPGRADER_DB"]


def make_plan(cli: Cli, cluster: str, to: str, *extra: str) -> dict[str, Any]:
    return json.loads(cli.run("plan", cluster, "--to", to, *extra, "-o", "json").stdout)


def runs_of(cli: Cli, cluster: str) -> list[dict[str, Any]]:
    return json.loads(cli.run("runs", "list", cluster, "-o", "json").stdout)


def failed_step(run: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in run["steps"] if s["status"] == "failed")


def api_back_at(cli: Cli, name: str, version: str) -> None:
    def back() -> bool:
        status = cli.status(name)
        return status["api_version"] == version and status["ready"]

    eventually(back, timeout=90)


def pinned_pod_running(cli: Cli, kubeconfig: str, node: str) -> None:
    def running() -> bool:
        pods = json.loads(cli.kubectl(kubeconfig, "get", "pods", "-n", "demo", "-l", f"app=pinned-{node}",
                                      "-o", "json").stdout)["items"]
        return any(p["status"].get("phase") == "Running" and p["spec"].get("nodeName") == node for p in pods)

    eventually(running, timeout=60)


NODE_PACKAGES = ("dpkg-query -W kubeadm kubelet kubectl && apt-mark showhold "
                 "&& cat /etc/apt/sources.list.d/kubernetes.list")


def package_state(cli: Cli, name: str, nodes: list[str]) -> dict[str, str]:
    """Each node's Kubernetes packages (with their hold marks) and its repository line, as a node shows them."""
    return {node: cli.exec(name, node, "sh", "-c", NODE_PACKAGES).stdout for node in nodes}


# -- refused before anything changes (the sandbox stays as it was) -------------------------------------

def test_a_plan_whose_cluster_changed_is_refused_naming_the_change(mcli: Cli, wk: dict[str, Any]) -> None:
    plan = make_plan(mcli, "wk", "v1.31")
    mcli.kubectl(wk["kubeconfig"], "cordon", "worker-2")
    try:
        done = mcli.run("apply", str(plan["id"]), "--yes", check=False)
    finally:
        mcli.kubectl(wk["kubeconfig"], "uncordon", "worker-2")
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"cluster wk changed since plan {plan['id']} was made (worker-2 unschedulable False -> True)" \
        in done.stderr
    assert "upgrader plan wk --to v1.31" in done.stderr
    assert runs_of(mcli, "wk") == []


def test_dry_run_prints_every_step_and_changes_nothing(mcli: Cli, wk: dict[str, Any]) -> None:
    plan = make_plan(mcli, "wk", "v1.31", "--max-unavailable", "2")
    nodes = ["cp-1", "worker-1", "worker-2"]
    before = (package_state(mcli, "wk", nodes), runs_of(mcli, "wk"),
              {n: o["spec"].get("unschedulable") for n, o in node_objects(mcli, wk["kubeconfig"]).items()},
              mcli.run("snapshot", "list", "wk", "-o", "json").stdout)
    done = mcli.run("apply", str(plan["id"]), "--dry-run", "-o", "json")
    preview = json.loads(done.stdout)
    assert preview["dry_run"] is True and [s["n"] for s in preview["steps"]] == [s["n"] for s in plan["steps"]]
    assert all(s["would"] for s in preview["steps"])
    kubelet = next(s for s in preview["steps"] if s["action"] == "upgrade-kubelet" and s["node"] == "worker-1")
    assert "systemctl restart kubelet" in kubelet["would"]
    after = (package_state(mcli, "wk", nodes), runs_of(mcli, "wk"),
             {n: o["spec"].get("unschedulable") for n, o in node_objects(mcli, wk["kubeconfig"]).items()},
             mcli.run("snapshot", "list", "wk", "-o", "json").stdout)
    assert after == before
    assert "1.30.6-1.1" in before[0]["worker-1"] and "kubeadm\nkubectl\nkubelet" in before[0]["worker-1"]


def test_a_budget_that_would_block_a_drain_is_refused_by_preflight_with_no_run(mcli: Cli,
                                                                              wk: dict[str, Any]) -> None:
    kc = wk["kubeconfig"]
    mcli.run("sandbox", "fault", "wk", "drain-blocked:worker-1")
    try:
        pinned_pod_running(mcli, kc, "worker-1")
        plan = make_plan(mcli, "wk", "v1.31")
        done = mcli.run("apply", str(plan["id"]), "--yes", check=False)
    finally:
        mcli.run("sandbox", "fault", "wk", "--clear")
        mcli.kubectl(kc, "delete", "-n", "demo", "pdb/pinned-worker-1", "deployment/pinned-worker-1")
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert (f"error: preflight refused the apply of plan {plan['id']} (nothing was changed): disruption-budgets: "
            "PodDisruptionBudgets that would block a drain: demo/pinned-worker-1 (zero disruptions allowed); "
            "see `upgrader preflight wk --to v1.31") in done.stderr
    assert runs_of(mcli, "wk") == []


# -- faults that strike a run: each stops it, and fixing the cause lets resume go on --------------------

@pytest.mark.timeout(900)
def test_each_fault_stops_the_run_with_an_accurate_record_and_resume_finishes_it(mcli: Cli,
                                                                               wk: dict[str, Any]) -> None:
    kc = wk["kubeconfig"]
    plan = make_plan(mcli, "wk", "v1.31", "--max-unavailable", "2")
    target = plan["target"]

    # kubeadm-apply-fails: the new kube-apiserver is never picked up; kubeadm times out and restores.
    mcli.run("sandbox", "fault", "wk", "kubeadm-apply-fails@v1.31")
    done = mcli.run("apply", str(plan["id"]), "--yes", *FAST, check=False, timeout=300)
    assert done.returncode == 6, done.stderr
    run_id = latest_run(mcli, "wk")["id"]  # type: ignore[index]
    assert f"upgrader resume {run_id}" in done.stdout and "last output:" in done.stdout
    run = check_stopped(mcli, kc, run_id, action="kubeadm-upgrade-apply", node="cp-1", error=KUBEADM_FAILED)
    output = failed_step(run)["outputs"]["output"]
    assert "[upgrade/apply] FATAL: couldn't upgrade control plane." in output
    assert "static Pod hash for component kube-apiserver on Node cp-1 did not change after 5s" in output
    assert run["outcome"]["output"] == output and run["outcome"]["changed"] is True
    crashloop = "upgrader runbook run apiserver-crashloop-after-upgrade --cluster wk --param node=cp-1"
    assert run["outcome"]["runbook"]["command"] == crashloop and crashloop in done.stdout  # the failure names it
    assert [s["status"] for s in run["steps"][:3]] == ["succeeded"] * 3
    api_back_at(mcli, "wk", "v1.30.6")

    # apiserver-unready: the new kube-apiserver starts but never becomes ready; kubeadm restores again.
    mcli.run("sandbox", "fault", "wk", "--clear")
    mcli.run("sandbox", "fault", "wk", "apiserver-unready@v1.31")
    done = mcli.run("resume", str(run_id), "--yes", "-o", "json", check=False, timeout=300)
    assert done.returncode == 6, done.stderr
    assert json.loads(done.stdout)["status"] == "failed"
    run = check_stopped(mcli, kc, run_id, action="kubeadm-upgrade-apply", node="cp-1", error=KUBEADM_FAILED)
    step = failed_step(run)
    assert "static Pod for component kube-apiserver on Node cp-1 did not become ready after 5s" in \
        step["outputs"]["output"]
    assert step["attempts"] == 2
    assert run["outcome"]["runbook"]["command"] == crashloop
    api_back_at(mcli, "wk", "v1.30.6")

    # node-unreachable in the worker batch (worker-1 drops off the network while the control plane's kubelet
    # is upgraded): its commands are retried with backoff, then its step fails; worker-2 finishes the step it
    # is in and stops.
    mcli.run("sandbox", "fault", "wk", "--clear")
    with Background(mcli, "resume", str(run_id), "--yes", name="resume") as resumed:
        wait_for(ledger(mcli), "wk", action="upgrade-kubelet", node="cp-1", proc=resumed)
        mcli.run("sandbox", "fault", "wk", "node-unreachable:worker-1")
        done = resumed.wait()
    assert done.code == 6, done.err
    run = check_stopped(mcli, kc, run_id, action="upgrade-kubeadm", node="worker-1",
                        error="node worker-1 is unreachable (4 tries): ssh: connect to host worker-1 port 22")
    lost = failed_step(run)
    assert lost["outputs"]["timing"]["wait_ms"] >= (2 + 4 + 8) * 1000  # the backoff between its four tries
    other = [s for s in run["steps"] if s["node"] == "worker-2"]
    statuses = [s["status"] for s in other]
    k = statuses.count("succeeded")
    assert k >= 1 and statuses == ["succeeded"] * k + ["pending"] * (len(other) - k), statuses
    if k < len(other):  # it stopped early: only after finishing the step it was in when worker-1 failed
        assert _at(other[k - 1]["finished_at"]) >= _at(lost["finished_at"])
    assert [s["status"] for s in run["steps"][-2:]] == ["pending", "pending"]  # batch gate, postflight

    # drain-blocked: a single-replica workload under minAvailable 1 on worker-1; the drain gives up after
    # 15 s and worker-1 stays cordoned by this run.
    mcli.run("sandbox", "fault", "wk", "--clear")
    mcli.run("sandbox", "fault", "wk", "drain-blocked:worker-1")
    pinned_pod_running(mcli, kc, "worker-1")
    done = mcli.run("resume", str(run_id), "--yes", check=False, timeout=300)
    assert done.returncode == 6, done.stderr
    run = check_stopped(mcli, kc, run_id, action="drain", node="worker-1",
                        error="node worker-1 was not drained within 15s: 1 pod(s) still on it: demo/pinned-worker-1")
    assert "PodDisruptionBudget demo/pinned-worker-1" in failed_step(run)["error"]
    assert "worker-1" in run["outcome"]["cordoned_by_run"]
    assert "nodes this run cordoned stay cordoned until it finishes: " in done.stdout
    assert run["outcome"]["runbook"]["name"] == "uncordon-nodes-left-by-upgrader"
    assert f"runbook run uncordon-nodes-left-by-upgrader --cluster wk --param run={run_id}" in done.stdout

    # node-not-ready: the operator removed the budget; now worker-1's new kubelet never reports Ready.
    mcli.kubectl(kc, "delete", "-n", "demo", "pdb/pinned-worker-1")
    mcli.run("sandbox", "fault", "wk", "--clear")
    mcli.run("sandbox", "fault", "wk", "node-not-ready:worker-1@v1.31")
    done = mcli.run("resume", str(run_id), "--yes", check=False, timeout=300)
    assert done.returncode == 6, done.stderr
    run = check_stopped(mcli, kc, run_id, action="upgrade-kubelet", node="worker-1",
                        error=f"health gate 'worker-1 Ready at {target}' did not pass within 20s")
    assert "worker-1 NotReady" in failed_step(run)["error"]
    assert "worker-1" in run["outcome"]["cordoned_by_run"]
    assert [(r["name"], r["params"]) for r in run["outcome"]["runbooks"]] == [
        ("node-stuck-not-ready", {"node": "worker-1"}), ("uncordon-nodes-left-by-upgrader", {"run": str(run_id)})]

    # the cause fixed, resume finishes the run
    mcli.run("sandbox", "fault", "wk", "--clear")
    done = mcli.run("resume", str(run_id), "--yes", check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    run = check_finished(mcli, kc, run_id, target)
    kinds = [e["kind"] for e in json.loads(mcli.run("history", "wk", "-o", "json").stdout)["events"]
             if e["run_id"] == run_id]
    assert kinds.count("run-failed") == 5 and kinds.count("run-resumed") == 5 and kinds.count("run-succeeded") == 1
    again = mcli.run("apply", str(plan["id"]), "--yes", check=False)
    assert again.returncode == 2 and f"plan {plan['id']} was already applied by run {run_id}" in again.stderr


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


# -- etcd: a member down before the run, and one that goes down in the middle of it ---------------------

def _member_health(cli: Cli, name: str) -> dict[str, bool]:
    return {m["name"]: m["healthy"] for m in cli.status(name)["etcd_members"]}


def test_an_etcd_member_down_before_the_run_is_refused_by_preflight(mcli: Cli, e3: dict[str, Any]) -> None:
    plan = make_plan(mcli, "e3", "v1.31")
    mcli.run("sandbox", "fault", "e3", "etcd-member-down:cp-3")
    try:
        eventually(lambda: _member_health(mcli, "e3") == {"cp-1": True, "cp-2": True, "cp-3": False})
        done = mcli.run("apply", str(plan["id"]), "--yes", check=False)
    finally:
        mcli.run("sandbox", "fault", "e3", "--clear")
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert (f"error: preflight refused the apply of plan {plan['id']} (nothing was changed): etcd: etcd members "
            "not healthy: cp-3") in done.stderr
    assert "; see `upgrader preflight e3 --to v1.31" in done.stderr and "disruption-budgets" not in done.stderr
    assert runs_of(mcli, "e3") == []
    eventually(lambda: all(_member_health(mcli, "e3").values()), timeout=60)


def test_an_etcd_member_lost_mid_run_stops_kubeadm_and_the_run(mcli: Cli, e3: dict[str, Any]) -> None:
    kc = e3["kubeconfig"]
    plan = make_plan(mcli, "e3", "v1.31")
    with Background(mcli, "apply", str(plan["id"]), "--yes", *FAST, name="apply") as applying:
        wait_for(ledger(mcli), "e3", action="upgrade-kubeadm", node="cp-1", proc=applying)
        mcli.run("sandbox", "fault", "e3", "etcd-member-down:cp-3")
        done = applying.wait()
    try:
        assert done.code == 6, done.err
        run_id = latest_run(mcli, "e3")["id"]  # type: ignore[index]
        run = check_stopped(mcli, kc, run_id, action="kubeadm-upgrade-apply", node="cp-1", error=KUBEADM_FAILED)
        assert "etcd cluster is not healthy" in failed_step(run)["outputs"]["output"]
        # two of three members answer: quorum holds, the lost member is named
        assert (run["outcome"]["runbook"]["name"], run["outcome"]["runbook"]["params"]) == (
            "etcd-member-lost", {"node": "cp-3"})
        assert run_doc(mcli, run_id)["outcome"]["cordoned_by_run"] == []
        assert steps_of(run, "kubeadm-upgrade-node")[0]["status"] == "pending"
    finally:
        mcli.run("sandbox", "fault", "e3", "--clear")
