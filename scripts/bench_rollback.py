"""`scripts/bench.py rollback [3+5] [3+50]`: the time to recover from a failed upgrade by automatic rollback.

A sandbox at v1.31.4 (3 control planes, and 5 then 50 workers) is planned to v1.32 and applied with the
fault ``apiserver-unready@v1.32`` (the new API server never becomes ready) and ``--gate-timeout 20s``:
the hop fails and the engine rolls the cluster back to the snapshot taken before it.

Time to recover: from the failure detected (the failing step's finish in the apply run's ledger) to
the cluster verified at the old version (the rollback run's verify step finished), split by phase: the
rollback's steps grouped by action, each phase counted from the end of the one before (so the phases
add up to the whole), "prepare" being the time before the rollback's first step (the snapshot verified,
the inventory and loss list made, the plan and run recorded). All of it from the steps' timestamps of
``upgrader runs show RUN -o json``. The goal (issue 11): under 60 s for 3+5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

UPGRADER = [sys.executable, "-m", "upgrader"]
FROM, TO, FAULT = "v1.31.4", "v1.32", "apiserver-unready@v1.32"
GOAL = 60.0
APPLY_ARGS = ["--yes", "--gate-interval", "0.5s", "--gate-passes", "2", "--gate-timeout", "20s", "-o", "json"]

PHASES: tuple[tuple[str, frozenset[str]], ...] = (
    ("stop control plane", frozenset({"stop-control-plane"})),
    ("move etcd data aside", frozenset({"move-etcd-data"})),
    ("restore etcd", frozenset({"restore-etcd"})),
    ("reinstate manifests", frozenset({"reinstate-manifests"})),
    ("downgrade packages", frozenset({"downgrade-packages"})),
    ("start + quorum/readyz", frozenset({"start-control-plane"})),
    ("workers drain/downgrade/uncordon", frozenset({"drain", "downgrade-kubelet", "uncordon", "health-gate"})),
    ("verify", frozenset({"verify-rollback"})),
)


def _cli(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    return subprocess.run([*UPGRADER, *args], env=env, check=True, capture_output=True, text=True,
                          timeout=timeout).stdout


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def phases(failed_at: datetime, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """("prepare", then each phase): seconds from the previous boundary to the phase's last step's end,
    its step count, and the summed node / wait time its steps recorded (outputs.timing)."""
    out = [{"phase": "prepare (verify snapshot, inventory, loss list, plan)", "steps": 0,
            "seconds": (min(_at(s["started_at"]) for s in steps) - failed_at).total_seconds(),
            "node_s": 0.0, "wait_s": 0.0}]
    boundary = min(_at(s["started_at"]) for s in steps)
    for label, actions in PHASES:
        mine = [s for s in steps if s["action"] in actions]
        if not mine:
            out.append({"phase": label, "steps": 0, "seconds": 0.0, "node_s": 0.0, "wait_s": 0.0})
            continue
        end = max(_at(s["finished_at"]) for s in mine)
        timing = [s["outputs"].get("timing", {}) for s in mine]
        out.append({"phase": label, "steps": len(mine), "seconds": (end - boundary).total_seconds(),
                    "node_s": sum(t.get("node_ms", 0) for t in timing) / 1000,
                    "wait_s": sum(t.get("wait_ms", 0) for t in timing) / 1000})
        boundary = end
    return out


def bench_one(control_planes: int, workers: int) -> dict[str, Any]:
    label = f"{control_planes}+{workers}"
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "UPGRADER_DB": str(Path(tmp) / "ledger.db"), "XDG_DATA_HOME": tmp}
        name = f"benchrb{workers}"
        try:
            _cli(env, "sandbox", "up", name, "--version", FROM, "--control-planes", str(control_planes),
                 "--workers", str(workers), "--kubeadm-timeout", "20s", "-o", "json")
            plan = json.loads(_cli(env, "plan", name, "--to", TO, "-o", "json"))
            _cli(env, "sandbox", "fault", name, FAULT)
            began = time.perf_counter()
            applied = subprocess.run([*UPGRADER, "apply", str(plan["id"]), *APPLY_ARGS], env=env, capture_output=True,
                                     text=True, timeout=1800)
            wall = time.perf_counter() - began
            if applied.returncode != 5:
                raise SystemExit(f"{label}: apply exited {applied.returncode}, not 5: {applied.stderr[-2000:]}")
            failed = json.loads(_cli(env, "runs", "show", str(json.loads(applied.stdout)["id"]), "-o", "json"))
            rollback_id = failed["outcome"]["auto_rollback"]["run"]
            rollback = json.loads(_cli(env, "runs", "show", str(rollback_id), "-o", "json"))
        finally:
            subprocess.run([*UPGRADER, "sandbox", "down", name], env=env, check=False, capture_output=True)
    saved = Path(tempfile.gettempdir()) / f"bench-rollback-{label}.json"
    saved.write_text(json.dumps({"apply": failed, "rollback": rollback}, indent=1))
    failing = [s for s in failed["steps"] if s["status"] == "failed"]
    failed_at = max(_at(s["finished_at"]) for s in failing)
    verify = next(s for s in rollback["steps"] if s["action"] == "verify-rollback")
    recover = (_at(verify["finished_at"]) - failed_at).total_seconds()
    rows = phases(failed_at, rollback["steps"])
    print(f"rollback {label}: {FROM} -> {TO} with {FAULT}, apply exit 5 after {wall:.1f} s; load average "
          f"{load:.1f} before, {os.getloadavg()[0]:.1f} after (runs: {saved})")
    print(f"  failure detected: step {failing[0]['n']} {failing[0]['action']} failed; rollback run {rollback_id} "
          f"{rollback['status']}, {len(rollback['steps'])} steps")
    print(f"  {'phase':<56} {'steps':>5} {'seconds':>8} {'node s':>8} {'wait s':>8}")
    for r in rows:
        print(f"  {r['phase']:<56} {r['steps']:>5} {r['seconds']:8.1f} {r['node_s']:8.1f} {r['wait_s']:8.1f}")
    met = recover < GOAL
    goal = f"goal under {GOAL:.0f} s: {'met' if met else 'not met'}" if label == "3+5" else "no goal set"
    print(f"  {'time to recover (failure detected -> verified at ' + FROM + ')':<56} {'':>5} {recover:8.1f}  "
          f"{goal}")
    result = {"bench": "rollback", "nodes": label, "recover_s": round(recover, 1), "goal_s": GOAL,
              "met": met if label == "3+5" else None, "apply_wall_s": round(wall, 1),
              "phases": {r["phase"]: round(r["seconds"], 1) for r in rows}, "load_before": load}
    print(json.dumps(result))
    return result


def bench_rollback(sizes: list[str]) -> None:
    for size in sizes or ["3+5", "3+50"]:
        cps, workers = (int(x) for x in size.split("+"))
        bench_one(cps, workers)
