"""`scripts/bench.py apply`: what upgrader itself costs per step of a real apply, and how close the
apply comes to the time the cluster's own work allows.

A 3 control-plane + 50 worker sandbox at v1.30.6 is planned to v1.31 with ``--max-unavailable 10``
and applied with ``--gate-interval 1s``. Each step's ``outputs.timing`` (measured by the engine) gives:

- upgrader's own overhead per step: wall time minus node commands and waiting (gates, a drain's
  sleeps), as median and p95 (the goal: under 50 ms), with the parts of it spent in cluster API
  calls and in the step's `running` ledger write; the ledger's two writes per step (running, then
  the outcome) are also replayed alone afterwards, in a fresh ledger, without the run's threads;
- the apply's wall time beside the critical path of its simulated work: serial steps' node + wait
  time, plus per worker batch the slowest node's steps' node + wait time and the batch's gate.

Beforehand, what a sandbox worker costs: the sandbox's processes idle with 3+0 and with 3+50 nodes
(CPU over 10 s, RSS), and, during the apply, the CPU of the sandbox, of upgrader itself and of the
node commands it ran. The machine is shared: its load average is printed with the figures.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

UPGRADER = [sys.executable, "-m", "upgrader"]
CONTROL_PLANES, WORKERS, AT_ONCE = 3, 50, 10
FROM, TO = "v1.30.6", "v1.31"
SETTLE, IDLE = 5.0, 10.0
TICK = os.sysconf("SC_CLK_TCK")


def _cli(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    return subprocess.run([*UPGRADER, *args], env=env, check=True, capture_output=True, text=True,
                          timeout=timeout).stdout


def _tree(root: int) -> list[int]:
    """``root`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _cpu(pid: int, *, reaped: bool = True) -> float:
    """CPU seconds of ``pid`` (with ``reaped``: and of its descendants that ended and were waited for)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if reaped else 0)
    return ticks / TICK


def _tree_cpu(root: int) -> float:
    return sum(_cpu(pid) for pid in _tree(root))


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _supervisor(env: dict[str, str], name: str) -> int:
    return int(json.loads(_cli(env, "sandbox", "status", name, "-o", "json"))["supervisor_pid"])


def _idle(env: dict[str, str], name: str, sandbox_dir: str) -> dict[str, float]:
    """The sandbox's processes after SETTLE seconds: cores used over IDLE seconds, RSS, disk."""
    sup = _supervisor(env, name)
    time.sleep(SETTLE)
    before = _tree_cpu(sup)
    time.sleep(IDLE)
    cores = (_tree_cpu(sup) - before) / IDLE
    rss = sum(_status_kib(pid, "VmRSS") for pid in _tree(sup)) / 1024
    disk = subprocess.run(["du", "-sk", sandbox_dir], check=True, capture_output=True, text=True).stdout.split()[0]
    return {"cores": cores, "rss_mib": rss, "supervisor_mib": _status_kib(sup, "VmRSS") / 1024,
            "disk_mib": int(disk) / 1024}


def _up(env: dict[str, str], name: str, workers: int) -> dict[str, Any]:
    return dict(json.loads(_cli(env, "sandbox", "up", name, "--version", FROM, "--control-planes",
                                str(CONTROL_PLANES), "--workers", str(workers), "-o", "json")))


def _floor(env: dict[str, str]) -> dict[str, float]:
    name = "benchfloor"
    try:
        info = _up(env, name, 0)
        return _idle(env, name, info["dir"])
    finally:
        subprocess.run([*UPGRADER, "sandbox", "down", name], env=env, check=False, capture_output=True)


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _segments(steps: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """("serial", [step]) or ("batch", steps of one batch), in plan order (as the executor groups them)."""
    group: list[dict[str, Any]] = []
    for step in steps:
        if group and step["batch"] != group[0]["batch"]:
            yield "batch", group
            group = []
        if step["batch"] is None:
            yield "serial", [step]
        else:
            group.append(step)
    if group:
        yield "batch", group


def _busy(step: dict[str, Any]) -> float:
    timing = step["outputs"]["timing"]
    return float(timing["node_ms"] + timing["wait_ms"]) / 1000


def critical_path(steps: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(critical path, its serial part, its batch part) in seconds."""
    serial = batches = 0.0
    for kind, group in _segments(steps):
        if kind == "serial":
            serial += _busy(group[0])
            continue
        per_node: dict[str, float] = {}
        for step in group:
            if step["node"] is not None:
                per_node[step["node"]] = per_node.get(step["node"], 0.0) + _busy(step)
        batches += max(per_node.values(), default=0.0) + sum(_busy(s) for s in group if s["node"] is None)
    return serial + batches, serial, batches


def _overheads(steps: list[dict[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"all": [], "api": [], "own": [], "ledger": [], "rest": []}
    for step in steps:
        t = step["outputs"]["timing"]
        own = t["wall_ms"] - t["node_ms"] - t["wait_ms"]
        out["all"].append(own)
        out["api"].append(t["api_ms"])
        out["own"].append(own - t["api_ms"])
        out["ledger"].append(t["ledger_ms"])
        out["rest"].append(own - t["api_ms"] - t["ledger_ms"])
        out.setdefault(step["action"], []).append(own)
    return out


def replay_writes(work: Path, steps: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Each step's two ledger writes (running, then its outcome as the run recorded it), one step after
    another, in a fresh SQLite ledger holding a plan of the same steps: the writes alone, without the
    run's threads, its lease keeper or a sandbox beside them."""
    from upgrader.domain.runs import StepStatus
    from upgrader.ledger.db import open_ledger, upgrade

    url = f"sqlite:///{work / 'replay.db'}"
    upgrade(url)
    rows = [{k: s[k] for k in ("n", "action", "node", "version", "batch")} | {"reversibility": "none"}
            for s in steps]
    pairs = []
    with open_ledger(url) as ledger:
        with ledger.unit_of_work() as uow:
            uow.repo.add_cluster(name="replay", kubeconfig=str(work / "kubeconfig"), context=None, transport=None,
                                 actor="bench")
            plan_id = uow.repo.save_plan(cluster="replay", observation=None, created_by="bench", target=TO,
                                         strategy={}, skipped_versions=[], source_fingerprint=None, document={},
                                         steps=rows)
            token = int(uow.repo.acquire_lock(cluster="replay", holder="bench", ttl_seconds=3600,
                                              now=datetime.now(UTC)))
            run = uow.repo.create_run(plan_id=plan_id, started_by="bench", host="bench", command_line="bench",
                                      token=token, options={})
            uow.commit()
        for step in steps:
            began = time.perf_counter()
            with ledger.unit_of_work() as uow:
                uow.repo.start_step(run.id, step["n"], token=token)
                uow.commit()
            middle = time.perf_counter()
            with ledger.unit_of_work() as uow:
                uow.repo.finish_step(run.id, step["n"], StepStatus.SUCCEEDED, token=token, outputs=step["outputs"])
                uow.commit()
            pairs.append((middle - began, time.perf_counter() - middle))
    return pairs


def _apply(env: dict[str, str], plan_id: int, sup: int) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Run the apply, sampling CPU; (wall seconds, CPU figures, the run as `apply -o json` printed it)."""
    argv = [*UPGRADER, "apply", str(plan_id), "--yes", "--gate-interval", "1s", "-o", "json"]
    sandbox_before = _tree_cpu(sup)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:  # a file: the run's JSON is larger than a pipe holds
        proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.DEVNULL, text=True)
        own = peak = 0.0
        while proc.poll() is None:
            own = max(own, _cpu(proc.pid, reaped=False))  # upgrader's own threads, the node commands apart
            peak = max(peak, _status_kib(proc.pid, "VmHWM") / 1024)
            time.sleep(0.5)
        wall = time.perf_counter() - started
        stdout.seek(0)
        out = stdout.read()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    cpu = {"sandbox": _tree_cpu(sup) - sandbox_before, "upgrader": own, "node_commands": total - own,
           "upgrader_peak_mib": peak, "supervisor_peak_mib": _status_kib(sup, "VmHWM") / 1024}
    try:
        return wall, cpu, json.loads(out)
    except ValueError:
        raise SystemExit(f"apply exited {proc.returncode} and printed no run: {out[-2000:]}") from None


def bench_apply() -> None:
    print(f"apply: {CONTROL_PLANES}+{WORKERS} sandbox {FROM} -> {TO}, --max-unavailable {AT_ONCE}, "
          f"--gate-interval 1s; load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "UPGRADER_DB": str(work / "ledger.db"), "XDG_DATA_HOME": str(work)}
        floor = _floor(env)
        name = "benchapply"
        try:
            info = _up(env, name, WORKERS)
            idle = _idle(env, name, info["dir"])
            _print_idle(floor, idle)
            plan = json.loads(_cli(env, "plan", name, "--to", TO, "--max-unavailable", str(AT_ONCE), "-o", "json"))
            sup = _supervisor(env, name)
            load_before = os.getloadavg()[0]
            wall, cpu, run = _apply(env, int(plan["id"]), sup)
            print(f"  during the apply ({wall:.0f} s; load average {load_before:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after): sandbox processes {cpu['sandbox']:.0f} CPU s "
                  f"({cpu['sandbox'] / wall:.2f} cores), upgrader itself {cpu['upgrader']:.0f} CPU s "
                  f"({cpu['upgrader'] / wall:.2f} cores, peak RSS {cpu['upgrader_peak_mib']:.0f} MiB), the node "
                  f"commands it ran {cpu['node_commands']:.0f} CPU s; supervisor peak RSS "
                  f"{cpu['supervisor_peak_mib']:.0f} MiB")
            shown = json.loads(_cli(env, "runs", "show", str(run["id"]), "-o", "json"))
        finally:
            subprocess.run([*UPGRADER, "sandbox", "down", name], env=env, check=False, capture_output=True)
        saved = Path(tempfile.gettempdir()) / "bench-apply-run.json"
        saved.write_text(json.dumps(shown, indent=1))
        print(f"  (the run as `runs show -o json` printed it: {saved})")
        if shown["status"] != "succeeded":
            raise SystemExit(f"  run {shown['id']} {shown['status']}: {shown['outcome']}")
        _report(shown["steps"], wall, run)
        print_replay(replay_writes(work, shown["steps"]))  # after `sandbox down`: the ledger alone


def print_replay(pairs: list[tuple[float, float]]) -> None:
    start = [a * 1000 for a, _ in pairs]
    finish = [b * 1000 for _, b in pairs]
    print(f"  ledger writes replayed alone (SQLite, {len(pairs)} steps, load average {os.getloadavg()[0]:.1f}): "
          f"running write median {statistics.median(start):.1f} ms p95 {_pct(start, 95):.1f}; outcome write "
          f"median {statistics.median(finish):.1f} ms p95 {_pct(finish, 95):.1f}")


def _print_idle(floor: dict[str, float], idle: dict[str, float]) -> None:
    for label, f in ((f"{CONTROL_PLANES}+0", floor), (f"{CONTROL_PLANES}+{WORKERS}", idle)):
        print(f"  idle {label:<5} sandbox processes {f['cores']:.3f} cores, RSS {f['rss_mib']:.0f} MiB "
              f"(supervisor {f['supervisor_mib']:.0f} MiB), disk {f['disk_mib']:.0f} MiB")
    print(f"  so one idle worker: {(idle['cores'] - floor['cores']) / WORKERS * 100:.2f}% of a core, "
          f"{(idle['rss_mib'] - floor['rss_mib']) / WORKERS:.2f} MiB RSS, "
          f"{(idle['disk_mib'] - floor['disk_mib']) / WORKERS:.2f} MiB disk")


def _report(steps: list[dict[str, Any]], wall: float, run: dict[str, Any]) -> None:
    own = _overheads(steps)
    print(f"  run {run['id']} {run['status']}: {len(steps)} steps")
    for key, label in (("all", "upgrader's own overhead per step (wall - node - wait)"),
                       ("api", "  of which cluster API calls"), ("own", "  the rest: upgrader's code and its ledger"),
                       ("ledger", "    of which the `running` ledger write"),
                       ("rest", "    of which Python, threads, progress log")):
        values = own[key]
        print(f"  {label:<58} median {statistics.median(values):7.1f} ms  p95 {_pct(values, 95):7.1f} ms  "
              f"max {max(values):7.1f} ms")
    for action in sorted(k for k in own if k not in ("all", "api", "own", "ledger", "rest")):
        values = own[action]
        print(f"    {action:<26} n={len(values):<4} median {statistics.median(values):7.1f} ms  "
              f"p95 {_pct(values, 95):7.1f} ms")
    path, serial, batches = critical_path(steps)
    first = min(datetime.fromisoformat(s["started_at"]) for s in steps)
    last = max(datetime.fromisoformat(s["finished_at"]) for s in steps)
    span = (last - first).total_seconds()
    print(f"  critical path of the simulated work {path:7.1f} s (serial steps {serial:.1f} s, worker batches "
          f"{batches:.1f} s)")
    print(f"  apply wall time                     {wall:7.1f} s (first step start to last step end {span:.1f} s)")
    print(f"  ratio apply / critical path: {wall / path:.3f} (steps alone {span / path:.3f})")
