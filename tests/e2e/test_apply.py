"""`upgrader apply` end to end on a sandbox: v1.30 with 3 control planes and 5 workers to v1.33, skip-level
workers two at a time, while a Deployment under its PodDisruptionBudget is watched from outside.

The plan expands a playbook copy with added checks (tests/e2e/playbooks/): an approval gate on the first
control-plane node before each hop, a check after each control-plane kubelet and one before each worker's
drain. The approval is missing at first: that check fails, the run stops with its attempts recorded, and
once the approval is there `upgrader resume` finishes the run with every check run on every node, in order."""

from __future__ import annotations

import json

import pytest

from tests.e2e.apply_helpers import WORKLOAD, Sampler, max_overlap, run_doc, server_of, steps_of
from tests.e2e.conftest import REPO, Cli

CPS = ["cp-1", "cp-2", "cp-3"]
WORKERS = [f"worker-{i}" for i in range(1, 6)]
PLAYBOOKS = REPO / "tests" / "e2e" / "playbooks"
APPROVAL = "/etc/kubernetes/upgrade-approved"


@pytest.mark.timeout(1500)
def test_apply_takes_a_3_plus_5_cluster_from_v1_30_to_v1_33_without_losing_the_workload(cli: Cli) -> None:
    info = cli.up("big", "--version", "v1.30.6", "--control-planes", "3", "--workers", "5")
    kc = info["kubeconfig"]
    workload = cli.home / "web.yaml"
    workload.write_text(WORKLOAD)
    cli.kubectl(kc, "apply", "--validate=false", "-f", str(workload))
    cli.kubectl(kc, "rollout", "status", "deployment/web", "--timeout", "60s")
    plan = json.loads(cli.run("plan", "big", "--to", "v1.33", "--max-unavailable", "2", "--playbooks", str(PLAYBOOKS),
                              "-o", "json").stdout)
    target = plan["target"]

    # the approval gate fails before anything changed: the run stops (exit 6) with the check's attempts
    refused = cli.run("apply", str(plan["id"]), "--yes", "--gate-interval", "0.5s", "--gate-passes", "2", check=False)
    assert refused.returncode == 6, refused.stderr
    run_id = json.loads(cli.run("runs", "list", "big", "-o", "json").stdout)[0]["id"]
    stopped = run_doc(cli, run_id)
    assert [(s["n"], s["action"], s["node"], s["status"]) for s in stopped["steps"][:3]] == [
        (1, "preflight", None, "succeeded"), (2, "check", "cp-1", "failed"), (3, "snapshot", "cp-1", "pending")]
    gate = stopped["steps"][1]
    assert "check upgrade-approved (cp-1: ls /etc/kubernetes/upgrade-approved) did not pass in 2 attempt(s)" \
        in gate["error"]
    assert [a["ok"] for a in gate["outputs"]["attempts"]] == [False, False]
    assert "No such file or directory" in gate["outputs"]["output"]
    cli.exec("big", "cp-1", "touch", APPROVAL)

    with Sampler(server_of(kc), WORKERS) as sampled:
        done = cli.run("resume", str(run_id), "--yes", "-o", "json", timeout=1800)
    run = json.loads(done.stdout)
    assert run["status"] == "succeeded", run["outcome"]

    # every node ends at the target
    nodes = json.loads(cli.kubectl(kc, "get", "nodes", "-o", "json").stdout)["items"]
    assert {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {
        n: target for n in CPS + WORKERS}
    assert not any(n["spec"].get("unschedulable") for n in nodes)
    assert all("upgrader.io/cordoned-by" not in (n["metadata"].get("annotations") or {}) for n in nodes)

    # the ledger shows each step, all succeeded, once each
    shown = run_doc(cli, run["id"])
    assert [s["n"] for s in shown["steps"]] == [s["n"] for s in plan["steps"]]
    assert all(s["status"] == "succeeded" and s["attempts"] == (2 if s["n"] == 2 else 1) for s in shown["steps"]), [
        (s["n"], s["status"], s["error"]) for s in shown["steps"] if s["status"] != "succeeded"]

    # the added checks ran on every node of their role, where the copy put them, in plan order
    checks = steps_of(shown, "check")
    assert [c["node"] for c in checks] == ["cp-1", *CPS] * 3 + sorted(WORKERS), [c["node"] for c in checks]
    assert all(c["outputs"]["attempts"][-1]["ok"] for c in checks)
    serial = [c for c in checks if c["node"] in CPS]
    assert [c["started_at"] for c in serial] == sorted(c["started_at"] for c in serial)
    for check in checks:
        before, after = shown["steps"][check["n"] - 2], shown["steps"][check["n"]]
        if check["node"] in WORKERS:
            assert (before["action"], after["action"]) == ("kubeadm-upgrade-node", "drain")
            assert after["node"] == check["node"]
            assert before["finished_at"] <= check["started_at"] and check["finished_at"] <= after["started_at"]
        elif before["action"] == "upgrade-kubelet":
            assert (before["node"], after["action"]) == (check["node"], "uncordon")
        else:  # the approval gate: first thing in each hop, before its snapshot
            assert (check["node"], after["action"]) == ("cp-1", "snapshot")
            assert before["action"] == ("preflight" if check["n"] == 2 else "uncordon")

    # each control-plane hop had a verified, known-good snapshot before it
    for apply_step in steps_of(shown, "kubeadm-upgrade-apply"):
        before = [s for s in steps_of(shown, "snapshot") if s["n"] < apply_step["n"]]
        snapshot_id = before[-1]["outputs"]["snapshot_id"]
        assert before[-1]["outputs"]["known_good"] is True
        verified = json.loads(cli.run("snapshot", "verify", str(snapshot_id), "-o", "json").stdout)
        assert verified["ok"] is True, verified
    assert len(steps_of(shown, "kubeadm-upgrade-apply")) == 3

    # skip-level: every worker upgraded once, straight to the target; never more than 2 out at once
    kubelets = steps_of(shown, "upgrade-kubelet")
    assert {w: [s["version"] for s in kubelets if s["node"] == w] for w in WORKERS} == {w: [target] for w in WORKERS}
    assert max_overlap(shown, WORKERS) <= 2
    assert sampled.unavailable and max(len(u) for u in sampled.unavailable) <= 2

    # the Deployment never dropped below its PodDisruptionBudget's minAvailable
    assert len(sampled.web_ready) > 50 and min(sampled.web_ready) >= 2, sampled.web_ready

    # history and runs list tell the same story
    history = json.loads(cli.run("history", "big", "-o", "json").stdout)
    kinds = [e["kind"] for e in history["events"]]
    assert "run-started" in kinds and "run-succeeded" in kinds
    assert {s["run_id"] for s in history["snapshots"]} == {run["id"]}
    listed = json.loads(cli.run("runs", "list", "big", "-o", "json").stdout)
    assert [r["id"] for r in listed] == [run["id"]] and listed[0]["status"] == "succeeded"
    again = cli.run("apply", str(plan["id"]), "--yes", check=False)
    assert again.returncode == 2 and "already applied" in again.stderr
