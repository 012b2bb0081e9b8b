#!/usr/bin/env python3
"""Benchmarks: figures printed, not asserted (the README quotes them).

  .venv/bin/python scripts/bench.py            all
  .venv/bin/python scripts/bench.py planner    only the planner figures
  .venv/bin/python scripts/bench.py cli        only CLI start-up figures

Issue 2: planning v1.24 -> the newest minor for a 5,000-node inventory (pure planner, replay check,
and the whole `upgrader plan` command with its ledger write), and the wall time of
`upgrader --version` and `upgrader cluster list` beside a bare interpreter start as the floor.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from upgrader.domain.inventory import ControlPlaneComponents, Inventory, Node, inventory_to_dict  # noqa: E402
from upgrader.domain.planning import plan_upgrade  # noqa: E402
from upgrader.domain.plans import Strategy  # noqa: E402
from upgrader.domain.replay import replay  # noqa: E402
from upgrader.domain.versions import Version  # noqa: E402
from upgrader.services import load_catalog  # noqa: E402

UPGRADER = [sys.executable, "-m", "upgrader"]


def big_inventory(workers: int, *, control_planes: int = 3) -> Inventory:
    v = Version(1, 24, 17)
    nodes = [
        Node(f"cp-{i}", True, v, True, False, ControlPlaneComponents(v, v, v, "3.5.6-0"))
        for i in range(1, control_planes + 1)
    ]
    nodes += [Node(f"worker-{i:05d}", False, v, True, False) for i in range(workers)]
    return Inventory("fleet", datetime(2026, 11, 30, tzinfo=UTC), tuple(nodes))


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def row(name: str, samples: list[float], extra: str = "") -> None:
    med = statistics.median(samples)
    print(f"{name:<58} median {med * 1000:9.1f} ms  min {min(samples) * 1000:9.1f} ms  n={len(samples)} {extra}")


def bench_planner() -> None:
    catalog = load_catalog(None)
    newest = catalog.newest_minor
    assert newest is not None
    inv = big_inventory(4997)
    strategy = Strategy(max_unavailable=50)
    plan = plan_upgrade(inv, newest, catalog, strategy=strategy)
    print(f"planner: {len(inv.nodes)} nodes, v1.24.17 -> {plan.target}, {len(plan.hops)} hops, {len(plan.steps)} steps")
    row("plan_upgrade (pure planner)", timed(lambda: plan_upgrade(inv, newest, catalog, strategy=strategy), 5))
    row("replay check of that plan", timed(lambda: replay(inv, plan), 3))
    with tempfile.TemporaryDirectory() as tmp:
        env = _cli_env(Path(tmp))
        _register(env, Path(tmp), "fleet")
        state = Path(tmp) / "inv.json"
        state.write_text(json.dumps(inventory_to_dict(inv)))
        argv = [*UPGRADER, "plan", "fleet", "--to", str(newest), "--state", str(state),
                "--max-unavailable", "50", "-o", "json"]
        samples = timed(lambda: subprocess.run(argv, env=env, check=True, capture_output=True), 3)
        row("`upgrader plan` end to end (parse, plan, replay, SQLite write)", samples)


def _cli_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "UPGRADER_DB": str(tmp / "ledger.db"), "XDG_DATA_HOME": str(tmp)}


def _register(env: dict[str, str], tmp: Path, name: str) -> None:
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {}}]\n"
    )
    subprocess.run([*UPGRADER, "cluster", "add", name, "--kubeconfig", str(kubeconfig)], env=env, check=True,
                   capture_output=True)


def bench_cli() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = _cli_env(Path(tmp))
        _register(env, Path(tmp), "prod")

        def run(argv: list[str]) -> None:
            subprocess.run(argv, env=env, check=True, capture_output=True)

        row("baseline: python -c pass (interpreter start)", timed(lambda: run([sys.executable, "-c", "pass"]), 15))
        row("upgrader --version", timed(lambda: run([*UPGRADER, "--version"]), 15))
        row("upgrader cluster list (SQLite, 1 cluster)", timed(lambda: run([*UPGRADER, "cluster", "list"]), 15))


if __name__ == "__main__":
    which = set(sys.argv[1:]) or {"planner", "cli"}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    if "planner" in which:
        bench_planner()
    if "cli" in which:
        bench_cli()
