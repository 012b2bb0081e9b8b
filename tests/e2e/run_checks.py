"""What the tests of stopped runs share: an `upgrader` process in the background (to strike it while it
works), and the checks every stopped run must pass: an accurate record and a clear next step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from tests.e2e.apply_helpers import run_doc, steps_of
from tests.e2e.conftest import REPO, Cli
from tests.processes import stop

CORDON_ANNOTATION = "upgrader.io/cordoned-by"


@dataclass
class Finished:
    code: int
    out: str
    err: str


class Background:
    """`python -m upgrader ARGS` started now; its output goes to files (no pipe to fill), and it is
    stopped by its pid when the test ends (use it as a context manager)."""

    def __init__(self, cli: Cli, *args: str, env: dict[str, str] | None = None, name: str = "bg") -> None:
        self.args = args
        self._out = cli.home / f"{name}-{time.monotonic_ns()}.out"
        self._err = self._out.with_suffix(".err")
        with self._out.open("w") as out, self._err.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "upgrader", *args], stdout=out, stderr=err,
                                         text=True, env=cli.env | (env or {}), cwd=REPO)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.resume_if_stopped()
        stop(self.proc)

    def resume_if_stopped(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM

    def wait(self, timeout: float = 300) -> Finished:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(self.proc)
            raise AssertionError(f"upgrader {' '.join(self.args)} still ran after {timeout}s\n"
                                 f"{self._err.read_text()[-3000:]}") from None
        return Finished(code, self._out.read_text(), self._err.read_text())

    def running(self) -> bool:
        return self.proc.poll() is None


def latest_run(cli: Cli, cluster: str, *extra: str) -> dict[str, Any] | None:
    listed = json.loads(cli.run(*extra, "runs", "list", cluster, "-o", "json").stdout)
    return listed[0] if listed else None


def wait_for(db: str, cluster: str, *, action: str, node: str | None = None, status: str = "running",
             proc: Background | None = None, timeout: float = 300) -> int:
    """The id of the newest run of ``cluster`` once its step ``action`` (on ``node``) is in ``status``.

    Polls the ledger at ``db`` through the same service `upgrader runs show` uses, in this process: a CLI
    call per poll costs a second or more on a busy machine, longer than some steps last. Fails at once
    when ``proc`` (the process doing the run) exits first.
    """
    from upgrader.services import runs
    from upgrader.services.wiring import AppContext

    app = AppContext(db=db)
    deadline = time.monotonic() + timeout
    seen: Any = None
    try:
        while time.monotonic() < deadline:
            if proc is not None and not proc.running():
                done = proc.wait()
                raise AssertionError(f"the run ended ({done.code}) before {action} on {node} was {status}; "
                                     f"last seen {seen}\n{done.out[-2000:]}\n{done.err[-3000:]}")
            found = runs.list_runs(app, cluster=cluster)
            if found:
                steps = [s for s in found[0].steps if s.action == action and (node is None or s.node == node)]
                seen = [(s.n, s.status.value) for s in steps]
                if any(s.status.value == status for s in steps):
                    return int(found[0].id)
            time.sleep(0.1)
    finally:
        app.close()
    raise AssertionError(f"no {action} step on {node} became {status} within {timeout}s (last seen {seen})")


def without_workers_budget(cli: Cli, kubeconfig: str) -> None:
    """A sandbox without workers cannot place the seeded demo workload, so its PodDisruptionBudget allows no
    disruption and preflight would refuse every apply for it: remove that budget (a cluster of control
    planes only has no such workload)."""
    cli.kubectl(kubeconfig, "delete", "-n", "demo", "pdb/web")


def node_objects(cli: Cli, kubeconfig: str) -> dict[str, dict[str, Any]]:
    items = json.loads(cli.kubectl(kubeconfig, "get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: n for n in items}


def left_cordoned(run: dict[str, Any]) -> list[str]:
    """Nodes the run cordoned and has not uncordoned: a drain began on them (a failed drain cordons first)
    and their uncordon has not succeeded."""
    began = {s["node"] for s in steps_of(run, "drain") if s["status"] in ("succeeded", "failed")}
    released = {s["node"] for s in steps_of(run, "uncordon") if s["status"] == "succeeded"}
    return sorted(began - released)


def check_stopped(cli: Cli, kubeconfig: str, run_id: int, *, action: str, node: str | None,
                  error: str) -> dict[str, Any]:
    """The run's record after a failed step, checked against the cluster: exactly that step failed with
    ``error``, nothing is left running, the outcome names the resume command and the snapshot taken before
    the hop, and lists exactly the nodes this run left cordoned (which carry its annotation). The run."""
    run = run_doc(cli, run_id)
    assert run["status"] == "failed", (run["status"], run["outcome"])
    assert not [s for s in run["steps"] if s["status"] == "running"], "a stopped run left a step running"
    failed = [s for s in run["steps"] if s["status"] == "failed"]
    assert [(s["action"], s["node"]) for s in failed] == [(action, node)], [
        (s["n"], s["action"], s["node"], s["error"]) for s in failed]
    step = failed[0]
    assert error in (step["error"] or ""), step["error"]
    assert step["finished_at"] and step["outputs"]["timing"]["wall_ms"] > 0
    outcome = run["outcome"]
    assert (outcome["step"], outcome["action"], outcome["node"]) == (step["n"], action, node)
    assert error in outcome["error"]
    assert any(f"upgrader resume {run_id}" in line for line in outcome["next"]), outcome["next"]

    snapshots = [s for s in steps_of(run, "snapshot") if s["status"] == "succeeded"]
    assert snapshots and snapshots[-1]["n"] < step["n"]
    assert outcome["snapshot_id"] == snapshots[-1]["outputs"]["snapshot_id"]
    snapshot = json.loads(cli.run("snapshot", "show", str(outcome["snapshot_id"]), "-o", "json").stdout)
    assert snapshot["run_id"] == run_id and snapshot["known_good"] is True
    assert snapshot["versions"]["kubernetes_version"] == snapshots[-1]["version"]  # taken before the hop

    cordoned = left_cordoned(run)
    assert outcome["cordoned_by_run"] == cordoned
    nodes = node_objects(cli, kubeconfig)
    for name in cordoned:
        assert nodes[name]["spec"].get("unschedulable") is True, name
        assert nodes[name]["metadata"]["annotations"][CORDON_ANNOTATION] == str(run_id), name
    if cordoned:
        assert any(", ".join(cordoned) in line for line in outcome["next"]), outcome["next"]
    return run


def check_finished(cli: Cli, kubeconfig: str, run_id: int, target: str) -> dict[str, Any]:
    """A run that ended well: every step succeeded, every node at ``target``, Ready, schedulable, and
    without this run's cordon annotation."""
    run = run_doc(cli, run_id)
    assert run["status"] == "succeeded", run["outcome"]
    assert all(s["status"] == "succeeded" for s in run["steps"]), [
        (s["n"], s["status"]) for s in run["steps"] if s["status"] != "succeeded"]
    for name, node in node_objects(cli, kubeconfig).items():
        assert node["status"]["nodeInfo"]["kubeletVersion"] == target, name
        assert not node["spec"].get("unschedulable"), name
        assert CORDON_ANNOTATION not in (node["metadata"].get("annotations") or {}), name
    return run
