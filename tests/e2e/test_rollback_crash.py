"""The rollback's crash matrix: `upgrader rollback --yes` killed (SIGKILL, by pid) while a step of each kind
is running in the ledger, then `upgrader resume RUN --yes` by a new process, itself killed at the next
kind, and so on, until a resume is let finish. The cluster must then be back at the snapshot.

One sandbox (1 control plane + 1 worker, v1.31 -> v1.32 with the worker upgraded too, applied with
--rehearse) and one rollback. The ledger is polled straight from its SQLite file every 10 ms. Steps of
node work are killed once a node command of theirs is in flight (the kill lands in the middle of the
work: a restore, a package downgrade, the kubelet's restart), or after NODE_WAIT seconds without one;
the engine's own steps as soon as they are `running`. A kind whose step is over in milliseconds may be
missed; the test reports which kinds it caught and requires the slow ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.apply_helpers import run_doc, steps_of
from tests.e2e.conftest import REPO, Cli
from tests.e2e.crash_helpers import Ledger, processes
from tests.e2e.run_checks import without_workers_budget
from tests.processes import stop

NAME = "rbcrash"
NODES = ["cp-1", "worker-1"]
KINDS = ("stop-control-plane", "move-etcd-data", "restore-etcd", "reinstate-manifests", "downgrade-packages",
         "start-control-plane", "drain", "downgrade-kubelet", "uncordon", "verify-rollback")
MUST = {"stop-control-plane", "restore-etcd", "downgrade-packages", "start-control-plane", "downgrade-kubelet",
        "verify-rollback"}
NODE_WORK = {"move-etcd-data", "restore-etcd", "reinstate-manifests", "downgrade-packages", "downgrade-kubelet"}
NODE_WAIT = 3.0  # seconds a node-work step may run without a node command in flight before it is killed anyway


@dataclass
class Kill:
    n: int
    action: str
    node: str | None
    why: str
    caught: list[tuple[int, str]]  # the steps still `running` once the process was dead


@dataclass
class Crasher:
    cli: Cli
    ledger: Ledger
    after_run: int  # the rollback's run is the first one above this id
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """upgrader in a process group of its own, which its node commands keep (so they can be found)."""
        i = len(self.started)
        with (self.cli.home / f"rb-{i}.out").open("wb") as out, (self.cli.home / f"rb-{i}.err").open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "upgrader", *args], env=self.cli.env, cwd=REPO,
                                    stdout=out, stderr=err, start_new_session=True)
        self.started.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[bytes], stream: str = "out") -> str:
        return (self.cli.home / f"rb-{self.started.index(proc)}.{stream}").read_text(errors="replace")

    def run_id(self) -> int | None:
        found = self.ledger.run_id()
        return found if found is not None and found > self.after_run else None

    def until_kill(self, proc: subprocess.Popen[bytes], remaining: set[str]) -> Kill | None:
        """Kill proc in the first step of a remaining kind; None when proc ended first."""
        seen: dict[int, float] = {}
        while proc.poll() is None:
            run_id = self.run_id()
            for n, (action, node, status) in (self.ledger.steps(run_id) if run_id else {}).items():
                if status != "running" or action not in remaining:
                    continue
                since = seen.setdefault(n, time.monotonic())
                if action not in NODE_WORK:
                    why = "running"
                elif any(p.pid != proc.pid for p in processes({proc.pid})):
                    why = "mid-step"
                elif time.monotonic() - since > NODE_WAIT:
                    why = f"running {NODE_WAIT:g}s"
                else:
                    continue
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)  # reaped: resume sees the holder of the lease gone
                assert run_id is not None
                caught = [(m, a) for m, (a, _, s) in sorted(self.ledger.steps(run_id).items()) if s == "running"]
                return Kill(n, action, node, why, caught)
            time.sleep(0.01)
        return None

    def stop_all(self) -> None:
        """Every upgrader started here, and what it left on the nodes (by process group)."""
        for proc in self.started:
            stop(proc)
            for left in processes({proc.pid}):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(left.pid, signal.SIGKILL)


def _events(cli: Cli, kind: str) -> list[tuple[int | None, dict[str, Any]]]:
    with closing(sqlite3.connect(f"file:{cli.home / 'ledger.db'}?mode=ro", uri=True, timeout=5)) as db:
        rows = db.execute("SELECT run_id, data FROM events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
    return [(run_id, json.loads(data) if data else {}) for run_id, data in rows]


def _configmaps(cli: Cli, kc: str) -> set[str]:
    found = json.loads(cli.kubectl(kc, "get", "configmaps", "-n", "default", "-o", "json").stdout)["items"]
    return {c["metadata"]["name"] for c in found}


@pytest.mark.timeout(1800)  # an upgrade, a rollback and ~10 upgrader starts: far more on a loaded machine
def test_every_kind_of_rollback_step_killed_is_resumed_to_the_snapshot(
        cli: Cli, record_property: Callable[[str, object], None]) -> None:
    began = time.monotonic()
    info = cli.up(NAME, "--version", "v1.31.4", "--control-planes", "1", "--workers", "1")
    kc = info["kubeconfig"]
    without_workers_budget(cli, kc)  # one worker: the demo workload's budget would block every drain of it
    cli.kubectl(kc, "create", "configmap", "before-upgrade", "-n", "default", "--from-literal=k=v")
    plan = json.loads(cli.run("plan", NAME, "--to", "v1.32", "-o", "json").stdout)
    applied = json.loads(cli.run("apply", str(plan["id"]), "--yes", "--rehearse", "--gate-interval", "0.5s",
                                 "--gate-passes", "2", "-o", "json", timeout=900).stdout)
    assert applied["status"] == "succeeded", applied["outcome"]
    assert applied["options"]["rehearse"] is True
    # --rehearse: the rollback to the hop's snapshot was rehearsed, on the run's record, before the hop
    shown = run_doc(cli, applied["id"])
    taken = [s["outputs"]["snapshot_id"] for s in steps_of(shown, "snapshot")]
    assert taken and [(r, d["snapshot"], d["ok"]) for r, d in _events(cli, "rollback-rehearsed")] == [
        (applied["id"], t, True) for t in taken]
    cli.kubectl(kc, "create", "configmap", "after-upgrade", "-n", "default", "--from-literal=k=v")

    ledger = Ledger(cli.home / "ledger.db")
    remaining = set(KINDS)
    kills: list[Kill] = []
    crasher = Crasher(cli, ledger, after_run=int(applied["id"]))
    try:
        proc = crasher.start("rollback", NAME, "--yes", "-o", "json")
        while True:
            kill = crasher.until_kill(proc, remaining)
            if kill is None:
                break
            kills.append(kill)
            remaining -= {a for _, a in kill.caught}
            proc = crasher.start("resume", str(crasher.run_id()), "--yes", "-o", "json")
        assert proc.returncode == 0, crasher.output(proc) + crasher.output(proc, "err")[-3000:]
        final = json.loads(crasher.output(proc))
    finally:
        crasher.stop_all()

    caught = {a for k in kills for _, a in k.caught}
    summary = (f"caught {sorted(caught)}; missed {sorted(set(KINDS) - caught)}; kills "
               f"{[(k.n, k.action, k.node, k.why, k.caught) for k in kills]}; {time.monotonic() - began:.0f}s")
    print(summary)
    record_property("rollback_crash_matrix", summary)
    assert final["status"] == "succeeded", final
    assert caught >= MUST, summary

    # the cluster is at the snapshot: v1.31 served, kubelets at v1.31, every node Ready and schedulable
    assert json.loads(cli.kubectl(kc, "get", "--raw", "/version").stdout)["gitVersion"] == "v1.31.4"
    nodes = json.loads(cli.kubectl(kc, "get", "nodes", "-o", "json").stdout)["items"]
    assert {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {
        n: "v1.31.4" for n in NODES}
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in nodes)
    assert not any(n["spec"].get("unschedulable") for n in nodes)
    assert all("upgrader.io/cordoned-by" not in (n["metadata"].get("annotations") or {}) for n in nodes)
    names = _configmaps(cli, kc)
    assert "before-upgrade" in names and "after-upgrade" not in names

    # the ledger: every step succeeded, each killed one ran again or was observed done; the runs are linked
    rollback = run_doc(cli, final["id"])
    assert rollback["rollback_of"] == applied["id"]
    assert run_doc(cli, applied["id"])["rolled_back_by"] == [final["id"]]
    assert all(s["status"] == "succeeded" for s in rollback["steps"]), [
        (s["n"], s["action"], s["status"], s["error"]) for s in rollback["steps"] if s["status"] != "succeeded"]
    by_n = {s["n"]: s for s in rollback["steps"]}
    for n, action in {(n, a) for k in kills for n, a in k.caught}:
        step = by_n[n]
        assert step["attempts"] >= 2 or (step["outputs"] or {}).get("observed") is True, (n, action, step)

    # the restore gave etcd new member ids: the cluster's snapshot is still known as its own, by the
    # etcd-restored lineage, to `snapshot verify --cluster` and to a rehearsal
    assert _events(cli, "etcd-restored")[-1][0] == final["id"]
    verified = json.loads(cli.run("snapshot", "verify", str(taken[0]), "--cluster", NAME, "-o", "json").stdout)
    assert verified["membership"].startswith("same members (the same etcd, restored since by run"), verified
    rehearsed = json.loads(cli.run("rollback", NAME, "--rehearse", "--to", str(taken[0]), "-o", "json").stdout)
    assert rehearsed["ok"] is True and rehearsed["snapshot"] == taken[0]
