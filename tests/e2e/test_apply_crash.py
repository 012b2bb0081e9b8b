"""The crash matrix: `upgrader apply` killed (SIGKILL, by pid) while a step of each kind is running in the
ledger, then `upgrader resume RUN --yes` by a new process, itself killed at the next kind, and so on,
until a resume is let finish. The run must end succeeded with the cluster correct every time.

One sandbox (2 control planes + 2 workers, v1.30.6 -> v1.31) and one run keep this inside the suite's
time: every kill is a different kind of step. The ledger is polled straight from its SQLite file every
10 ms. A kind whose step is over in milliseconds (uncordon, a drain with nothing to evict) may be
missed; then the next step of that kind is the target. The test reports which kinds it caught.

Where in a step the kill lands: as soon as it is `running` for steps of the engine's own (gates,
drain, uncordon); in the middle of the node work for the others (apt-get install of kubeadm, the
restart of the kubelet, a node command of the snapshot), and for kubeadm while it waits for the
kubelet to restart a moved kube-apiserver manifest. The kill of `kubeadm upgrade apply` leaves that
kubeadm running on the node (it is not killed with upgrader); the sandbox's kubelet is held from
picking up the new manifest (fault kubeadm-apply-fails on cp-1, cleared once the resume is at the
step) so the orphan outlives the resume's start: the resume must never run a second kubeadm beside it.
That resume is the kubeadm-upgrade-interrupted runbook, which resumes the run as its child; the
uncordon-nodes-left-by-upgrader runbook then frees what a dead run left cordoned, and only that.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.apply_helpers import run_doc, steps_of
from tests.e2e.conftest import REPO, Cli
from tests.e2e.crash_helpers import KubeadmSampler, Ledger, Proc, has_words, kubeadm_upgrade, processes
from tests.processes import stop

NAME = "crash"
CPS = ["cp-1", "cp-2"]
NODES = [*CPS, "worker-1", "worker-2"]
KINDS = ("preflight", "snapshot", "upgrade-kubeadm", "kubeadm-upgrade-apply", "health-gate", "kubeadm-upgrade-node",
         "drain", "upgrade-kubelet", "uncordon", "postflight")
MUST = {"snapshot", "upgrade-kubeadm", "kubeadm-upgrade-apply", "health-gate", "kubeadm-upgrade-node",
        "upgrade-kubelet"}
HOLD = "kubeadm-apply-fails:cp-1@v1.31"  # cp-1's kubelet leaves a v1.31 kube-apiserver manifest alone until cleared
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
_IMAGE = re.compile(r"image:\s*\S+:(v[0-9.]+)")
FALLBACK = 120.0  # seconds a slow step may run without its trigger before it is killed anyway
WAITING = 3.0  # seconds a resumed node command has waited before the held kubelet is let go


@dataclass
class Moment:
    """A step of a target kind seen running: what a trigger looks at."""

    pid: int
    node: str | None
    since: float
    sandbox: Path
    target: str

    def commands(self) -> list[Proc]:
        """The node commands the watched upgrader has in flight."""
        return [p for p in processes({self.pid}) if p.pid != self.pid]

    def manifest_moved(self) -> bool:
        path = self.sandbox / "nodes" / str(self.node) / "etc/kubernetes/manifests/kube-apiserver.yaml"
        try:
            return _IMAGE.findall(path.read_text()) == [self.target]
        except OSError:
            return False


def _command(*words: str) -> Callable[[Moment], bool]:
    return lambda m: any(has_words(p.argv, *words) for p in m.commands())


TRIGGERS: dict[str, Callable[[Moment], bool]] = {
    "snapshot": lambda m: bool(m.commands()),  # an image pull or the etcd snapshot under way
    "upgrade-kubeadm": _command("apt-get", "install"),  # repository moved, package unheld, not installed yet
    "kubeadm-upgrade-apply": Moment.manifest_moved,  # kubeadm waits for the kubelet to restart kube-apiserver
    "kubeadm-upgrade-node": Moment.manifest_moved,
    "upgrade-kubelet": _command("systemctl", "restart"),  # packages installed, the kubelet restarting
}


@dataclass
class Kill:
    n: int
    action: str
    node: str | None
    trigger: str
    caught: list[tuple[int, str]]  # the steps still `running` in the ledger once the process was dead
    left: list[Proc]  # its node commands still running after it died


@dataclass
class Crasher:
    cli: Cli
    ledger: Ledger
    sandbox: Path
    target: str
    sampler: KubeadmSampler
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """upgrader in a process group of its own, which its node commands keep (so they can be found)."""
        i = len(self.started)
        with (self.cli.home / f"upgrader-{i}.out").open("wb") as out, \
                (self.cli.home / f"upgrader-{i}.err").open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "upgrader", *args], env=self.cli.env, cwd=REPO,
                                    stdout=out, stderr=err, start_new_session=True)
        self.started.append(proc)
        self.sampler.watch(proc.pid)
        return proc

    def output(self, proc: subprocess.Popen[bytes], stream: str = "out") -> str:
        return (self.cli.home / f"upgrader-{self.started.index(proc)}.{stream}").read_text(errors="replace")

    def until_kill(self, proc: subprocess.Popen[bytes], remaining: set[str],
                   tick: Callable[[], None] | None = None, run_id: int | None = None) -> Kill | None:
        """Kill proc at the first step of a remaining kind of the run (the newest one unless ``run_id``),
        at its trigger; None when proc ended first."""
        seen: dict[int, float] = {}
        while proc.poll() is None:
            if tick is not None:
                tick()
            run_id = run_id or self.ledger.run_id()
            for n, (action, node, status) in (self.ledger.steps(run_id) if run_id else {}).items():
                if status != "running" or action not in remaining:
                    continue
                moment = Moment(proc.pid, node, seen.setdefault(n, time.monotonic()), self.sandbox, self.target)
                trigger = TRIGGERS.get(action)
                if trigger is None:
                    why = "running"
                elif trigger(moment):
                    why = "mid-step"
                elif time.monotonic() - moment.since > FALLBACK:
                    why = f"still running after {FALLBACK:g}s"
                else:
                    continue
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)  # reaped: resume sees the holder of the lease gone
                assert run_id is not None
                caught = [(m, a) for m, (a, _, s) in sorted(self.ledger.steps(run_id).items()) if s == "running"]
                return Kill(n, action, node, why, caught, processes({proc.pid}))
            time.sleep(0.01)
        return None

    def stop_all(self) -> None:
        """Every upgrader started here, and what it left on the nodes (by process group)."""
        for proc in self.started:
            stop(proc)
            for left in processes({proc.pid}):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(left.pid, signal.SIGKILL)


def _clear_hold_when_resume_waits(cli: Cli, proc: subprocess.Popen[bytes]) -> tuple[Callable[[], None], list[Any]]:
    """A tick that lets cp-1's kubelet go (so the orphan kubeadm can end) once the resumed upgrader is at the
    kubeadm step: it runs kubeadm, or has waited WAITING seconds on a node command about the node's kubeadm
    state (/etc/kubernetes); at the latest FALLBACK seconds after it started."""
    first: dict[int, float] = {}
    cleared: list[Any] = []
    begun = time.monotonic()

    def tick() -> None:
        if cleared:
            return
        now = time.monotonic()
        commands = [p for p in processes({proc.pid}) if p.pid != proc.pid
                    and any("kubeadm" in a or a.startswith("/etc/kubernetes") for a in p.argv)]
        waited = any(now - first.setdefault(p.pid, now) >= WAITING for p in commands)
        if waited or any(kubeadm_upgrade(p.argv) for p in commands) or now - begun > FALLBACK:
            done: list[subprocess.CompletedProcess[str]] = []
            thread = threading.Thread(target=lambda: done.append(cli.run("sandbox", "fault", NAME, HOLD, "--clear")))
            thread.start()
            cleared.append((thread, done))

    return tick, cleared


def _together(sampler: KubeadmSampler) -> str:
    return "two kubeadm upgrades at once on the cluster (pid, process group of the upgrader, argv): " + str(
        [[(p.pid, p.pgid, " ".join(p.argv[-5:])) for p in sample] for sample in sampler.together[:3]])


def _tags(sandbox: Path, node: str) -> dict[str, list[str]]:
    base = sandbox / "nodes" / node / "etc/kubernetes/manifests"
    return {c: _IMAGE.findall((base / f"{c}.yaml").read_text()) for c in COMPONENTS}


@pytest.mark.timeout(1500)  # ten upgrader starts and one whole upgrade: ~5 min, far more on a loaded machine
def test_every_kind_of_step_killed_mid_run_is_resumed_to_a_correct_cluster(
        cli: Cli, record_property: Callable[[str, object], None]) -> None:
    started = time.monotonic()
    info = cli.up(NAME, "--version", "v1.30.6", "--control-planes", "2", "--workers", "2", "--faults", HOLD,
                  "--kubeadm-timeout", "180s")
    sandbox, kc = Path(info["dir"]), info["kubeconfig"]
    plan = json.loads(cli.run("plan", NAME, "--to", "v1.31", "-o", "json").stdout)
    target = plan["target"]
    ledger = Ledger(cli.home / "ledger.db")
    remaining = set(KINDS)
    kills: list[Kill] = []
    orphans: list[Proc] = []
    cleared: list[Any] = []

    with KubeadmSampler() as sampler:
        crasher = Crasher(cli, ledger, sandbox, target, sampler)
        try:
            proc = crasher.start("apply", str(plan["id"]), "--yes", "--gate-interval", "1s", "--gate-passes", "2")
            tick: Callable[[], None] | None = None
            run_id: int | None = None
            while True:
                kill = crasher.until_kill(proc, remaining, tick, run_id)
                if kill is None:
                    break
                kills.append(kill)
                assert sampler.most <= 1, _together(sampler)  # fail at once: the rest of the run says nothing new
                remaining -= {a for _, a in kill.caught}
                run_id = run_id or ledger.run_id()
                tick = None
                if kill.action == "kubeadm-upgrade-apply":
                    # the incident commander's way after a kubeadm upgrade died half way: the runbook,
                    # which resumes the upgrade run as its child (and may itself be killed next)
                    proc = crasher.start("runbook", "run", "kubeadm-upgrade-interrupted", "--cluster", NAME,
                                         "--yes", "-o", "json")
                    orphans = [p for p in kill.left if kubeadm_upgrade(p.argv) == "apply"]
                    tick, cleared = _clear_hold_when_resume_waits(cli, proc)
                else:
                    proc = crasher.start("resume", str(run_id), "--yes", "-o", "json")
            assert proc.returncode == 0, crasher.output(proc) + crasher.output(proc, "err")[-3000:]
        finally:
            crasher.stop_all()
    assert run_id is not None
    final = run_doc(cli, run_id)
    for thread, done in cleared:
        thread.join(60)
        assert done and done[0].returncode == 0

    caught = {a for k in kills for _, a in k.caught}
    summary = (f"caught {sorted(caught)}; missed {sorted(set(KINDS) - caught)}; kills "
               f"{[(k.n, k.action, k.node, k.trigger, k.caught) for k in kills]}; "
               f"{time.monotonic() - started:.0f}s")
    print(summary)
    record_property("crash_matrix", summary)

    assert final["status"] == "succeeded", final
    assert caught >= MUST, summary

    # the kubeadm of the killed apply kept running on cp-1, and never beside another kubeadm
    assert orphans, f"no kubeadm upgrade apply was left running by the killed apply: {summary}"
    assert cleared, "the resume never reached the kubeadm-upgrade-apply step"
    assert sampler.most == 1, _together(sampler)

    # every node at the target and Ready, none cordoned, no cordon annotation left
    nodes = json.loads(cli.kubectl(kc, "get", "nodes", "-o", "json").stdout)["items"]
    assert {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {
        n: target for n in NODES}
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in nodes)
    assert not any(n["spec"].get("unschedulable") for n in nodes)
    assert all("upgrader.io/cordoned-by" not in (n["metadata"].get("annotations") or {}) for n in nodes)

    # control-plane manifests and kubeadm's recorded version at the target
    assert {cp: _tags(sandbox, cp) for cp in CPS} == {cp: {c: [target] for c in COMPONENTS} for cp in CPS}
    config = json.loads(cli.kubectl(kc, "-n", "kube-system", "get", "configmap", "kubeadm-config", "-o",
                                    "json").stdout)["data"]["ClusterConfiguration"]
    assert f"kubernetesVersion: {target}" in config

    # the kubeadm-upgrade-interrupted runbook's run: finished, or (killed itself) finished by its resume,
    # which accepts the upgrade run it leveled; then what a dead run could leave, uncordoned by the
    # uncordon-nodes-left-by-upgrader runbook: only upgrader's mark, never a person's cordon
    book = next(r for r in json.loads(cli.run("runs", "list", NAME, "-o", "json").stdout) if r["id"] > run_id)
    if book["status"] != "succeeded":
        book = json.loads(cli.run("resume", str(book["id"]), "--yes", "-o", "json").stdout)
    leveled = run_doc(cli, book["id"])
    assert leveled["status"] == "succeeded" and leveled["steps"][1]["outputs"]["run"] == run_id, leveled
    assert [s["action"] for s in leveled["steps"]] == ["observe-cluster", "level-control-plane", "wait-healthy",
                                                      "uncordon-left-by-upgrader"]
    cli.kubectl(kc, "cordon", "worker-1")  # a person's
    cli.kubectl(kc, "cordon", "worker-2")
    cli.kubectl(kc, "annotate", "node", "worker-2", f"upgrader.io/cordoned-by={run_id}")  # as a killed run leaves it
    freed = json.loads(cli.run("runbook", "run", "uncordon-nodes-left-by-upgrader", "--cluster", NAME, "--param",
                               f"run={run_id}", "--yes", "-o", "json").stdout)
    assert freed["status"] == "succeeded", freed
    said = freed["steps"][1]["outputs"]
    assert said["uncordoned"] == [{"node": "worker-2", "run": str(run_id)}] and said["left_alone"] == [
        {"node": "worker-1", "why": "cordoned by someone else (no upgrader.io/cordoned-by annotation)"}]
    listed = json.loads(cli.kubectl(kc, "get", "nodes", "-o", "json").stdout)["items"]
    nodes = {n["metadata"]["name"]: n for n in listed}
    assert nodes["worker-1"]["spec"].get("unschedulable") is True
    assert not nodes["worker-2"]["spec"].get("unschedulable")
    assert "upgrader.io/cordoned-by" not in (nodes["worker-2"]["metadata"].get("annotations") or {})
    cli.kubectl(kc, "uncordon", "worker-1")
    nodes = json.loads(cli.kubectl(kc, "get", "nodes", "-o", "json").stdout)["items"]
    assert not any(n["spec"].get("unschedulable") for n in nodes)

    # the ledger: every step succeeded; each killed one ran again or was observed done; one apply per hop
    shown = run_doc(cli, final["id"])
    assert all(s["status"] == "succeeded" for s in shown["steps"]), [
        (s["n"], s["action"], s["status"], s["error"]) for s in shown["steps"] if s["status"] != "succeeded"]
    by_n = {s["n"]: s for s in shown["steps"]}
    for n, action in {(n, a) for k in kills for n, a in k.caught}:
        step = by_n[n]
        assert step["attempts"] >= 2 or (step["outputs"] or {}).get("observed") is True, (n, action, step)
    hop_of = {s["n"]: s["hop"] for s in plan["steps"]}
    applies = steps_of(shown, "kubeadm-upgrade-apply")
    assert sorted(hop_of[s["n"]] for s in applies) == list(range(len(plan["hops"]))), applies
