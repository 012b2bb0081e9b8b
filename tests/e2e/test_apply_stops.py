"""A run stopped from outside: Ctrl-C (SIGINT to the apply process) stops it at the next safe point and
resume finishes it; one run per cluster on PostgreSQL, and a stalled holder whose lease expired
is taken over by resume and stops at its next write instead of racing the new holder.

Every process a test starts is stopped by its pid when the test ends (a stopped one is continued first).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import Any

import pytest

from tests.e2e.apply_helpers import run_doc, steps_of
from tests.e2e.conftest import Cli, eventually
from tests.e2e.run_checks import (
    CORDON_ANNOTATION,
    Background,
    check_finished,
    node_objects,
    wait_for,
    without_workers_budget,
)

FAST = ("--gate-timeout", "60s", "--gate-interval", "1s")
TTL = {"UPGRADER_LEASE_TTL": "5"}


def _plan(cli: Cli, *args: str) -> dict[str, Any]:
    return json.loads(cli.run(*args, "-o", "json").stdout)


def _interrupt(proc: Background) -> None:
    os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends (to that process only: its node commands go on)


def test_ctrl_c_stops_at_the_next_safe_point_and_resume_finishes_the_run(mcli: Cli) -> None:
    info = mcli.up("ic", "--version", "v1.30.6", "--control-planes", "1", "--workers", "0")
    kc, db = info["kubeconfig"], mcli.env["UPGRADER_DB"]
    without_workers_budget(mcli, kc)
    plan = _plan(mcli, "plan", "ic", "--to", "v1.31")

    # Ctrl-C while a node step works: the step finishes, the run stops before the next one.
    with Background(mcli, "apply", str(plan["id"]), "--yes", *FAST, "--drain-timeout", "5m") as applying:
        run_id = wait_for(db, "ic", action="upgrade-kubeadm", node="cp-1", proc=applying)
        _interrupt(applying)
        done = applying.wait()
    assert done.code == 130, done.err
    assert "stopping at the next safe point" in done.err
    assert f"run {run_id} interrupted: interrupted by the operator" in done.out
    assert f"next: upgrader resume {run_id}" in done.out
    run = run_doc(mcli, run_id)
    assert run["status"] == "interrupted" and run["outcome"]["next"] == f"upgrader resume {run_id}"
    statuses = [s["status"] for s in run["steps"]]
    k = statuses.count("succeeded")
    assert statuses == ["succeeded"] * k + ["pending"] * (len(statuses) - k), statuses
    assert steps_of(run, "upgrade-kubeadm")[0]["status"] == "succeeded"  # the step it was in, finished

    # Ctrl-C while a drain waits on a budget that refuses every eviction: the drain stops at once.
    mcli.run("sandbox", "fault", "ic", "drain-blocked:cp-1")

    def pinned() -> bool:
        pods = json.loads(mcli.kubectl(kc, "get", "pods", "-n", "demo", "-o", "json").stdout)["items"]
        return any(p["status"].get("phase") == "Running" and p["spec"].get("nodeName") == "cp-1" for p in pods)

    eventually(pinned, timeout=60)
    with Background(mcli, "resume", str(run_id), "--yes") as resumed:
        wait_for(db, "ic", action="drain", node="cp-1", proc=resumed)
        time.sleep(2)  # into its eviction retries
        _interrupt(resumed)
        done = resumed.wait(timeout=120)
    assert done.code == 130, done.err
    assert f"next: upgrader resume {run_id}" in done.out, (done.out, done.err)
    run = run_doc(mcli, run_id)
    assert run["status"] == "interrupted", run["outcome"]
    assert not [s for s in run["steps"] if s["status"] == "running"]
    drain = steps_of(run, "drain")[0]
    assert (drain["status"], drain["error"]) == ("failed", "interrupted by the operator")
    cp1 = node_objects(mcli, kc)["cp-1"]
    assert cp1["spec"]["unschedulable"] is True and cp1["metadata"]["annotations"][CORDON_ANNOTATION] == str(run_id)

    # The budget removed, resume finishes the run and the cluster is at the target.
    mcli.kubectl(kc, "delete", "-n", "demo", "pdb/pinned-cp-1")
    mcli.run("sandbox", "fault", "ic", "--clear")
    done = mcli.run("resume", str(run_id), "--yes", check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    check_finished(mcli, kc, run_id, plan["target"])
    assert mcli.status("ic")["api_version"] == plan["target"]


@pytest.fixture
def ledger_url(postgres_url: str) -> str:
    """PostgreSQL, the ledger several hosts share: where racing applies come from. (SQLite's lease is the
    same statement, held to the same contract in tests/integration/test_ledger_repository.py, and the
    Ctrl-C test above runs on it.)"""
    return postgres_url


@pytest.mark.timeout(900)
def test_one_run_per_cluster_and_a_stalled_holder_loses_its_lease_to_resume(mcli: Cli, ledger_url: str) -> None:
    name = "one-pg" if ledger_url.startswith("postgresql") else "one-sqlite"
    db = ("--db", ledger_url)
    mcli.run(*db, "db", "upgrade")
    mcli.started.append(name)
    info = json.loads(mcli.run(*db, "sandbox", "up", name, "--version", "v1.30.6", "--control-planes", "1",
                               "--workers", "0", "-o", "json").stdout)
    without_workers_budget(mcli, info["kubeconfig"])
    first = _plan(mcli, *db, "plan", name, "--to", "v1.31")
    second = _plan(mcli, *db, "plan", name, "--to", "v1.31")
    host = socket.gethostname()

    # Two applies of one plan and one of another plan of the same cluster, started together: one runs.
    slow = ("--yes", *FAST, "--gate-passes", "10")  # a control-plane gate lasts 10 s or more
    contenders = [Background(mcli, *db, "apply", str(plan["id"]), *slow, env=TTL, name=f"apply{i}")
                  for i, plan in enumerate((first, first, second))]
    try:
        run_id = wait_for(ledger_url, name, action="preflight", status="succeeded")
        eventually(lambda: sum(c.running() for c in contenders) == 1, timeout=120)
        holder = next(c for c in contenders if c.running())
        for loser in (c for c in contenders if c is not holder):
            done = loser.wait()
            assert done.code == 7, (loser.args, done.err)
            assert f"cluster {name!r} is locked by apply@{host}:{holder.pid}" in done.err, done.err
        runs = json.loads(mcli.run(*db, "runs", "list", name, "-o", "json").stdout)
        assert [r["id"] for r in runs] == [run_id] and runs[0]["status"] == "running"

        # Once its run is recorded, every other apply names that run as well.
        for plan in (first, second):
            done = mcli.run(*db, "apply", str(plan["id"]), "--yes", check=False)
            assert done.returncode == 7, done.stderr
            assert f"is locked by apply@{host}:{holder.pid} (token " in done.stderr
            assert f", run {run_id}) until " in done.stderr

        # The holder stalls (SIGSTOP) in a health gate; its lease runs out and resume takes the run over.
        wait_for(ledger_url, name, action="health-gate", node="cp-1", proc=holder)
        os.kill(holder.pid, signal.SIGSTOP)
        token = run_doc_db(mcli, db, run_id)["fencing_token"]
        time.sleep(float(TTL["UPGRADER_LEASE_TTL"]) + 1.5)
        with Background(mcli, *db, "resume", str(run_id), "--yes", env=TTL, name="resume") as resumed:
            eventually(lambda: run_doc_db(mcli, db, run_id)["fencing_token"] != token or not resumed.running(),
                       timeout=120)
            os.kill(holder.pid, signal.SIGCONT)
            stalled = holder.wait(timeout=120)
            assert stalled.code == 7, stalled.err
            assert "no longer held" in stalled.err and f"run {run_id} stopped" in stalled.err, stalled.err
            finished = resumed.wait(timeout=600)
        assert finished.code == 0, finished.err
    finally:
        for c in contenders:
            c.__exit__()
    run = run_doc_db(mcli, db, run_id)
    assert run["status"] == "succeeded" and run["fencing_token"] != token
    gate = steps_of(run, "health-gate")[0]
    assert gate["status"] == "succeeded" and gate["attempts"] == 2  # the stalled holder's attempt, then resume's
    nodes = json.loads(mcli.kubectl(info["kubeconfig"], "get", "nodes", "-o", "json").stdout)["items"]
    assert [n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes] == [first["target"]]
    events = json.loads(mcli.run(*db, "history", name, "-o", "json").stdout)["events"]
    assert [e["kind"] for e in events if e["run_id"] == run_id].count("run-resumed") == 1


def run_doc_db(cli: Cli, db: tuple[str, ...], run_id: int) -> dict[str, Any]:
    return json.loads(cli.run(*db, "runs", "show", str(run_id), "-o", "json").stdout)
