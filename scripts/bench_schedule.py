"""`scripts/bench.py schedule`: what `upgrader schedule tick` costs when there is nothing to do.

cron runs the tick every few minutes on every host that drives the fleet, so an idle tick must be
cheap. For 1 and for 500 scheduled clusters, on SQLite and on a throwaway PostgreSQL server
(tests/pg_server.py), a fresh ledger (`upgrader db upgrade`) gets its clusters registered in this
process through the services (a kubeconfig pointing at a closed port: an API call would fail), each
with a schedule in one of six zones (Europe/Berlin, London, Helsinki, UTC, America/New_York,
Asia/Tokyo), windows that differ by day and hour (one crosses midnight), and a year-end freeze.

Timed as processes, as cron pays them, all in turn (the 1-cluster and the 500-cluster ledger's
tick and floor, and the frozen tick, then again): one warm-up run, then SAMPLES runs each:
- `upgrader --db URL schedule tick --now T -o json` at a Wednesday noon outside every window;
- the same at a Saturday night inside every cluster's window but within its freeze (frozen);
- `upgrader --db URL cluster list -o json` on the same ledger: the floor (start-up, one ledger read).
Every tick's JSON must list each cluster as outside-window (or frozen) with exit 0: a figure from a
broken tick is worthless, so anything else stops the benchmark. Beside them, in this process, the
service call `schedule_tick.tick(app, now=T)` for the same ledger: the work without the start-up.
The per-cluster cost is (the 500 figure - the 1 figure) / 499.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UPGRADER = [sys.executable, "-m", "upgrader"]
SAMPLES = 11
SIZES = (1, 500)
OUTSIDE = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)  # a Wednesday noon: outside every window below
FROZEN = datetime(2026, 12, 26, 3, 30, tzinfo=UTC)  # a Saturday night: inside every window, in the freeze
FREEZE = "2026-12-20..2027-01-05"
# (zone, windows): each holds FROZEN in its zone's wall time, none holds OUTSIDE.
POLICIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Europe/Berlin", ("sat 02:00-06:00",)),
    ("Europe/London", ("sat,sun 01:00-05:00",)),
    ("Europe/Helsinki", ("fri,sat 03:00-07:00",)),
    ("UTC", ("daily 02:00-05:00",)),
    ("America/New_York", ("fri 22:00-04:00", "sun 01:00-03:00")),  # crosses midnight
    ("Asia/Tokyo", ("sat 10:00-14:00",)),
)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


def _kubeconfig(tmp: Path) -> Path:
    path = tmp / "kubeconfig"
    path.write_text(
        f"apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{_closed_port()}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {}}]\n"
    )
    path.chmod(0o600)
    return path


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UPGRADER, "--db", url, *args], capture_output=True, text=True, check=False, timeout=300)


def _fill(url: str, count: int, kubeconfig: Path) -> None:
    """A fresh ledger at ``url`` with ``count`` scheduled clusters (registered in this process)."""
    from upgrader.services import schedule
    from upgrader.services.clusters import register_cluster
    from upgrader.services.wiring import AppContext

    done = _cli(url, "db", "upgrade")
    if done.returncode != 0:
        raise SystemExit(f"db upgrade failed ({done.returncode}): {done.stderr.strip()}")
    app = AppContext(db=url)
    try:
        for i in range(count):
            name = f"fleet-{i:04d}"
            zone, windows = POLICIES[i % len(POLICIES)]
            register_cluster(app, name=name, kubeconfig=kubeconfig, context=None)
            changes = schedule.parse_changes({"window": list(windows), "tz": zone, "freeze": [FREEZE],
                                              "channel": "patch" if i % 3 else "minor"})
            schedule.set_schedule(app, name, changes)
    finally:
        app.close()


def _checked_tick(url: str, when: datetime, count: int, action: str) -> Callable[[], float]:
    argv = [*UPGRADER, "--db", url, "schedule", "tick", "--now", _iso(when), "-o", "json"]

    def run() -> float:
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        seconds = time.perf_counter() - start
        _check(done, count, action)
        return seconds

    return run


def _check(done: subprocess.CompletedProcess[str], count: int, action: str) -> None:
    """The tick did nothing, as it should have: exit 0, and every cluster reported as ``action``."""
    if done.returncode != 0:
        raise SystemExit(f"tick exited {done.returncode}: {done.stderr.strip()[-500:]}")
    doc = json.loads(done.stdout)
    actions = [c["action"] for c in doc["clusters"]]
    if len(actions) != count or set(actions) != {action} or doc["exit_code"] != 0:
        wrong = [c for c in doc["clusters"] if c["action"] != action][:3]
        raise SystemExit(f"tick reported {len(actions)} clusters, expected {count} all {action}: {wrong}")


def _checked_list(url: str, count: int) -> Callable[[], float]:
    argv = [*UPGRADER, "--db", url, "cluster", "list", "-o", "json"]

    def run() -> float:
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or len(json.loads(done.stdout)) != count:
            raise SystemExit(f"cluster list failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return seconds

    return run


def _in_turn(runs: dict[str, Callable[[], float]], samples: int = SAMPLES) -> dict[str, list[float]]:
    """Each command once to warm up, then ``samples`` rounds of all of them in turn."""
    for run in runs.values():
        run()
    out: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(samples):
        for label, run in runs.items():
            out[label].append(run())
    return out


def _in_process(url: str, when: datetime, count: int, samples: int = SAMPLES) -> list[float]:
    from upgrader.services import schedule_tick
    from upgrader.services.wiring import AppContext

    app = AppContext(db=url)
    try:
        times = []
        for _ in range(samples + 1):
            start = time.perf_counter()
            result = schedule_tick.tick(app, now=when)
            times.append(time.perf_counter() - start)
            if len(result.clusters) != count or {c.action for c in result.clusters} != {"outside-window"}:
                raise SystemExit(f"in-process tick did not find {count} clusters outside their windows")
        return times[1:]  # the first opens the ledger and imports what the tick needs
    finally:
        app.close()


def _row(label: str, samples: list[float], extra: str = "") -> None:
    print(f"  {label:<52} median {statistics.median(samples) * 1000:8.1f} ms  min {min(samples) * 1000:8.1f} ms"
          f"  n={len(samples)}{extra}")


@contextmanager
def _backends(tmp: Path) -> Iterator[Callable[[str, int], str]]:
    """A function (backend, N) -> a fresh, empty database URL; the PostgreSQL server lives as long as the block."""
    from tests.pg_server import running_postgres

    with running_postgres() as server:
        def fresh(backend: str, count: int) -> str:
            if backend == "sqlite":
                return f"sqlite:///{tmp / f'ledger-{count}.db'}"
            name = f"bench_{count}"
            with server.admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return server.url(name)

        yield fresh


TICK, FLOOR, FROZEN_TICK, IN_PROCESS = ("tick, outside every window", "cluster list (the floor)",
                                       "tick, in the window but frozen", "tick in process (no start-up)")


def bench_schedule() -> dict[str, dict[int, dict[str, float]]]:
    """The figures printed, and returned as medians in seconds: {backend: {N: {what: seconds}}}."""
    figures: dict[str, dict[int, dict[str, float]]] = {}
    print(f"schedule: an idle `schedule tick` with {' and '.join(map(str, SIZES))} scheduled clusters, outside "
          f"every window ({_iso(OUTSIDE)}) and frozen ({_iso(FROZEN)}); {SAMPLES} runs each, all in turn")
    with tempfile.TemporaryDirectory() as tmp, _backends(Path(tmp)) as fresh:
        kubeconfig = _kubeconfig(Path(tmp))
        for backend in ("sqlite", "postgresql"):
            urls = {}
            for count in SIZES:
                urls[count] = fresh(backend, count)
                start = time.perf_counter()
                _fill(urls[count], count, kubeconfig)
                print(f" {backend}: {count} cluster{'s' if count > 1 else ''} registered and scheduled in "
                      f"{time.perf_counter() - start:.1f} s")
            runs: dict[tuple[int, str], Callable[[], float]] = {}
            for count in SIZES:  # the 1 and the 500 runs in turn too: their difference is the per-cluster cost
                runs[count, TICK] = _checked_tick(urls[count], OUTSIDE, count, "outside-window")
                runs[count, FLOOR] = _checked_list(urls[count], count)
            runs[SIZES[-1], FROZEN_TICK] = _checked_tick(urls[SIZES[-1]], FROZEN, SIZES[-1], "frozen")
            timed = _in_turn(runs)
            for count in SIZES:
                timed[count, IN_PROCESS] = _in_process(urls[count], OUTSIDE, count)
            medians: dict[int, dict[str, float]] = {count: {} for count in SIZES}
            for (count, label), samples in sorted(timed.items()):
                _row(f"{count:>3} x {label}", samples)
                medians[count][label] = statistics.median(samples)
            small, big = medians[SIZES[0]], medians[SIZES[-1]]
            spread = SIZES[-1] - SIZES[0]
            per = {label: (big[label] - small[label]) / spread * 1000 for label in (TICK, FLOOR, IN_PROCESS)}
            print(f"  per cluster (({SIZES[-1]} - {SIZES[0]}) / {spread}): tick {per[TICK]:.2f} ms, cluster list "
                  f"{per[FLOOR]:.2f} ms, in process {per[IN_PROCESS]:.2f} ms; tick above its floor: "
                  + ", ".join(f"{n} clusters {(medians[n][TICK] - medians[n][FLOOR]) * 1000:.0f} ms" for n in SIZES))
            figures[backend] = medians
    return figures


if __name__ == "__main__":
    bench_schedule()
