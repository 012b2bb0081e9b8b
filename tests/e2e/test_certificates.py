"""`upgrader certs check|renew` on a sandbox (1 control plane, no workers), through the real CLI.

Its certificates are aged to expire in 10 days (`sandbox certs --expire-in 10d`): check says they are
due; renew renews them (check then says about a year) and restarts the static pods, which the API
shows as containers started after the renewal; the run and its plan (kind certificate-renewal) are
recorded. Then the renew-certificates runbook runs the same renewal as a child run and is killed
(SIGKILL, by pid) while the child's restart step has the control plane's manifests aside; `upgrader
resume RUN` of the runbook's run resumes that child, puts the manifests back and finishes both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.apply_helpers import api_get, server_of
from tests.e2e.conftest import REPO, Cli, eventually
from tests.e2e.crash_helpers import Ledger

NAME = "certs"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
ACTIONS = ["renew-certificates", "restart-control-plane", "health-gate"]


@pytest.fixture(scope="module")
def sandbox(mcli: Cli) -> dict[str, Any]:
    return mcli.up(NAME, "--control-planes", "1", "--workers", "0", "--version", "v1.33.6")


def check(cli: Cli) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cli.run("certs", "check", NAME, "-o", "json").stdout)
    return doc


def started(server: str) -> dict[str, str]:
    """component -> its mirror pod's container startedAt."""
    pods = api_get(server, "/api/v1/namespaces/kube-system/pods?labelSelector=tier%3Dcontrol-plane")["items"]
    return {p["metadata"]["labels"]["component"]: p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
            for p in pods if p["spec"]["nodeName"] == "cp-1"}


def stamp(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def manifests(cli: Cli) -> Path:
    return cli.home / "upgrader" / "sandboxes" / NAME / "nodes" / "cp-1" / "etc" / "kubernetes" / "manifests"


def aged(cli: Cli) -> dict[str, Any]:
    cli.run("sandbox", "certs", NAME, "--expire-in", "10d")
    doc = check(cli)
    assert doc["due"] is True and doc["horizon_days"] == 30, doc
    leaves = [c for n in doc["nodes"] for c in n["certificates"] if not c["authority"]]
    assert leaves and all(9 <= c["days_left"] <= 10 and c["within_horizon"] for c in leaves), leaves
    return doc


@pytest.mark.timeout(180)
def test_due_certificates_are_renewed_and_the_static_pods_restarted(mcli: Cli, sandbox: dict[str, Any]) -> None:
    aged(mcli)
    table = mcli.run("certs", "check", NAME).stdout
    assert "due: a certificate expires within 30 days" in table and "apiserver" in table
    server = server_of(sandbox["kubeconfig"])
    before = started(server)
    assert set(before) == set(COMPONENTS)
    renewal_began = stamp(time.time())

    done = mcli.run("certs", "renew", NAME, "--yes", "-o", "json")
    run = json.loads(done.stdout)
    assert run["status"] == "succeeded", run
    assert [(s["action"], s["node"], s["status"]) for s in run["steps"]] == [
        (a, "cp-1", "succeeded") for a in ACTIONS]
    after = check(mcli)
    assert after["due"] is False
    assert all(c["days_left"] >= 364 for n in after["nodes"] for c in n["certificates"] if not c["authority"])
    now = started(server)  # every static pod runs a container started after the renewal began
    assert all(now[c] >= renewal_began and now[c] > before[c] for c in COMPONENTS), (before, now)
    ps = json.loads(mcli.exec(NAME, "cp-1", "crictl", "ps", "-o", "json").stdout)["containers"]
    assert {c["metadata"]["name"] for c in ps} == set(COMPONENTS)

    shown = json.loads(mcli.run("runs", "show", str(run["id"]), "-o", "json").stdout)
    assert shown["status"] == "succeeded" and shown["outcome"]["certificates"] == {"renewed": ["cp-1"]}
    plan = json.loads(mcli.run("plans", "show", str(shown["plan"]), "-o", "json").stdout)
    assert plan["kind"] == "certificate-renewal" and [s["action"] for s in plan["steps"]] == ACTIONS
    assert set(plan["certificates"]["before"]["cp-1"]) >= {"apiserver", "admin.conf", "etcd-server"}


@pytest.mark.timeout(240)
def test_the_renew_certificates_runbook_killed_mid_step_is_finished_by_resume(
        mcli: Cli, sandbox: dict[str, Any]) -> None:
    """The renewal here runs as the renew-certificates runbook's child run: the runbook process is
    killed (SIGKILL) while that child's restart step has the control plane's manifests aside, and
    `upgrader resume` of the runbook's run resumes the same child and finishes both."""
    aged(mcli)
    ledger = Ledger(mcli.home / "ledger.db")
    last = ledger.run_id() or 0
    argv = ["runbook", "run", "renew-certificates", "--cluster", NAME, "--yes", "-o", "json"]
    with (mcli.home / "renew.out").open("wb") as out, (mcli.home / "renew.err").open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "upgrader", *argv],
                                env=mcli.env, cwd=REPO, stdout=out, stderr=err, start_new_session=True)
    try:
        def stopped() -> int | None:
            child = ledger.run_id()
            if child is None or child <= last + 1:  # the runbook's run first, then its child renewal
                return None
            steps = ledger.steps(child)
            if steps.get(2, ("", None, ""))[2] == "running" and not (manifests(mcli) / "kube-apiserver.yaml").exists():
                return child
            return None

        child_id = eventually(stopped, timeout=90, every=0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert isinstance(child_id, int)
    run_id = last + 1
    assert ledger.steps(run_id)[2] == ("renew-all-certificates", None, "running")
    assert ledger.steps(child_id)[2][2] == "running"
    aside = manifests(mcli).parent / f"upgrader-certs-{child_id}" / "manifests"
    assert (aside / "kube-apiserver.yaml").exists()  # the control plane is stopped, its manifests aside

    resumed = json.loads(mcli.run("resume", str(run_id), "--yes", "-o", "json").stdout)
    assert resumed["status"] == "succeeded", resumed
    assert [(s["action"], s["status"]) for s in resumed["steps"]] == [
        ("observe-cluster", "succeeded"), ("renew-all-certificates", "succeeded"), ("wait-healthy", "succeeded")]
    assert resumed["steps"][1]["outputs"]["run"] == child_id  # the same child, resumed, not a second renewal
    child = json.loads(mcli.run("runs", "show", str(child_id), "-o", "json").stdout)
    assert child["status"] == "succeeded" and [(s["action"], s["status"]) for s in child["steps"]] == [
        (a, "succeeded") for a in ACTIONS]
    assert all((manifests(mcli) / f"{c}.yaml").exists() for c in COMPONENTS)
    assert not list(aside.iterdir())
    assert check(mcli)["due"] is False
    server = server_of(sandbox["kubeconfig"])
    assert api_get(server, "/version")["gitVersion"] == "v1.33.6"
    nodes = api_get(server, "/api/v1/nodes")["items"]  # healthy, as the runbook's wait-healthy saw it
    assert nodes and all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
                         for n in nodes)
    shown = json.loads(mcli.run("runs", "show", str(run_id), "-o", "json").stdout)
    assert shown["status"] == "succeeded" and shown["outcome"]["runbook"] == "renew-certificates"
