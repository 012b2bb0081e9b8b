#!/usr/bin/env python3
"""Benchmarks: figures printed, not asserted (the README quotes them).

  .venv/bin/python scripts/bench.py            all (planner, cli, schedule, sandbox)
  .venv/bin/python scripts/bench.py planner    only the planner figures
  .venv/bin/python scripts/bench.py cli        only CLI start-up figures
  .venv/bin/python scripts/bench.py schedule   an idle `schedule tick` (cron's every few minutes) for 1 and 500
                                               scheduled clusters, on SQLite and on a throwaway PostgreSQL,
                                               beside `cluster list` as the floor (see scripts/bench_schedule.py)

  .venv/bin/python scripts/bench.py sandbox    only the sandbox figures
  .venv/bin/python scripts/bench.py exec       per-command cost of `sandbox exec` on a 1+1 sandbox
  .venv/bin/python scripts/bench.py ssh        100 commands over one SSH connection vs 100 bare ssh, on a
                                               throwaway loopback sshd (needs /usr/sbin/sshd; root)
  .venv/bin/python scripts/bench.py snapshot   `snapshot create` on a 1+1 sandbox holding 50,000 objects of 1 KiB vs a
                                               bare `etcdctl snapshot save` of the same member, in turn
  .venv/bin/python scripts/bench.py apply      upgrader's own overhead per step, and the apply against the critical
                                               path of its work: a 3+50 sandbox v1.30.6 -> v1.31, 10 workers at a
                                               time (not in "all": ~10 minutes; see scripts/bench_apply.py)
  .venv/bin/python scripts/bench.py rollback [3+5] [3+50]
                                               time to recover by automatic rollback from a failed v1.31 -> v1.32
                                               hop, split by phase (not in "all"; see scripts/bench_rollback.py)
  .venv/bin/python scripts/bench.py setup      fresh-clone set-up: the lock (uv) vs an unlocked pip install
                                               (not in "all": it downloads, and takes a few minutes)
  .venv/bin/python scripts/bench.py busy [--baseline REV|DIR]
                                               20 concurrent `plan` runs on one SQLite ledger, beside the
                                               same runs by an older tree (a git revision or a checkout);
                                               not in "all": ~10 GB of memory and a few minutes

Issue 2: planning v1.24 -> the newest minor for a 5,000-node inventory (pure planner, replay check,
and the whole `upgrader plan` command with its ledger write), and the wall time of
`upgrader --version` and `upgrader cluster list` beside a bare interpreter start as the floor.
Issue 3: `sandbox up` wall time with 3+3 and 3+50 nodes, the supervisor's memory (and its etcd and
apiserver children), and `list nodes` requests per second: raw HTTP on one kept-alive connection,
straight to one apiserver and through the load balancer side by side, and the official python client.
Issue 6: `upgrader --version`, `--help` and `cluster list` through the installed console script,
each run in turn with a bare interpreter start (the floor they are judged against); and the
set-up of a fresh clone from the lock (scripts/setup.sh, cold and warm uv cache) against the
unlocked `pip install -e '.[postgres,dev]'` it replaced (cold and warm pip cache).
Node isolation: what one command on a sandbox node costs, `upgrader sandbox exec NAME cp-1 -- true`
end to end beside a bare interpreter start, and the node transport alone (SandboxTransport.run of
`true`, in this process), which is what apply and runbooks pay per node command.
Issue 9: 100 `true` commands on one node over a real sshd on loopback: SshTransport.run over one
multiplexed connection (what `node exec`, apply and runbooks pay per command inside one process),
beside 100 bare `ssh -o ControlMaster=no ... true` (a new connection each), 100 bare ssh clients
over one already open master (the floor of multiplexing), and 100 `upgrader node exec` processes
(each a connection of its own: upgrader's master lives as long as the process).
Issue 8: twenty `upgrader plan` processes started at once, each planning a 10,000-node inventory
into one SQLite ledger: how many succeed, their exit codes, the plans actually stored, the wall
time and each run's latency (start to exit, p50 and max); with --baseline, the same runs by an
older tree first (its code from `git archive REV`, or a checkout DIR), on the same inventory.
Issue 12: the tick cron runs when it has nothing to do, 1 and 500 clusters outside their windows (and
500 frozen), as a process beside `cluster list` on the same ledger, and as the service call alone.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from upgrader.data import builtin_catalog  # noqa: E402
from upgrader.domain.inventory import ControlPlaneComponents, Inventory, Node, inventory_to_dict  # noqa: E402
from upgrader.domain.planning import plan_upgrade  # noqa: E402
from upgrader.domain.plans import Strategy  # noqa: E402
from upgrader.domain.replay import replay  # noqa: E402
from upgrader.domain.versions import Version  # noqa: E402

UPGRADER = [sys.executable, "-m", "upgrader"]
CONSOLE_SCRIPT = str(Path(sys.executable).parent / "upgrader")  # what an operator runs


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
    catalog = builtin_catalog()
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


def _register(env: dict[str, str], tmp: Path, name: str, *, cwd: Path | None = None) -> None:
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {}}]\n"
    )
    subprocess.run([*UPGRADER, "cluster", "add", name, "--kubeconfig", str(kubeconfig)], env=env, check=True,
                   capture_output=True, cwd=cwd)


def bench_cli() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = _cli_env(Path(tmp))
        _register(env, Path(tmp), "prod")

        def run(argv: list[str]) -> float:
            start = time.perf_counter()
            subprocess.run(argv, env=env, check=True, capture_output=True)
            return time.perf_counter() - start

        bare = [sys.executable, "-c", "pass"]
        for label, argv in (("upgrader --version", [CONSOLE_SCRIPT, "--version"]),
                            ("upgrader --help", [CONSOLE_SCRIPT, "--help"]),
                            ("upgrader cluster list (SQLite, 1 cluster)", [CONSOLE_SCRIPT, "cluster", "list"])):
            run(argv)  # warm the page cache
            pairs = [(run(argv), run(bare)) for _ in range(21)]
            cmd, floor = [a for a, _ in pairs], [b for _, b in pairs]
            row(label, cmd, f"(bare python in turn: median {statistics.median(floor) * 1000:.1f} ms; "
                f"difference {(statistics.median(cmd) - statistics.median(floor)) * 1000:.0f} ms)")


def _timed_shell(argv: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def bench_setup() -> None:
    """A fresh clone of HEAD set up twice each way: with empty caches (cold) and again (warm)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        clone = base / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_CACHE_DIR", "PIP_CACHE_DIR")}
        env |= {"UV_CACHE_DIR": str(base / "uv-cache"), "PIP_CACHE_DIR": str(base / "pip-cache")}
        for label in ("cold", "warm"):
            for path in (clone / ".venv", clone / ".tools"):
                subprocess.run(["rm", "-rf", str(path)], check=True)
            seconds = _timed_shell(["bash", "scripts/setup.sh"], cwd=clone, env=env)
            print(f"{'fresh clone, scripts/setup.sh from uv.lock (' + label + ' cache)':<58} {seconds:8.1f} s")
        pip_env = {**env, "PIP_CACHE_DIR": str(base / "pip-cache-unlocked")}
        for label in ("cold", "warm"):
            venv = clone / ".venv-pip"
            subprocess.run(["rm", "-rf", str(venv)], check=True)
            seconds = _timed_shell(["sh", "-c", f"python3 -m venv {venv} && {venv}/bin/pip install -q "
                                    "--disable-pip-version-check -e '.[postgres,dev]'"], cwd=clone, env=pip_env)
            print(f"{'baseline: unlocked pip install -e (' + label + ' cache)':<58} {seconds:8.1f} s")


BUSY_RUNS = 20
BUSY_NODES = 10_000


def bench_busy(baseline: str | None) -> None:
    catalog = builtin_catalog()
    newest = catalog.newest_minor
    assert newest is not None
    inv = big_inventory(BUSY_NODES - 3)
    steps = len(plan_upgrade(inv, newest, catalog, strategy=Strategy(max_unavailable=50)).steps)
    print(f"busy: {BUSY_RUNS} concurrent `upgrader plan` runs, {BUSY_NODES} nodes each (v1.24.17 -> {newest}, "
          f"{steps} steps), one SQLite ledger")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "inventory.json"
        state.write_text(json.dumps(inventory_to_dict(inv)))
        trees = [(f"baseline {baseline}", _checkout(baseline, Path(tmp) / "baseline"))] if baseline else []
        trees.append(("this tree", ROOT))
        for label, tree in trees:
            _busy_round(label, tree, state, str(newest), Path(tmp) / label.replace(" ", "-"))


def _checkout(revision: str, into: Path) -> Path:
    """A directory holding the old tree: given as one, or unpacked from `git archive REV`."""
    if Path(revision).is_dir():
        return Path(revision).resolve()
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _busy_round(label: str, tree: Path, state: Path, target: str, work: Path) -> None:
    work.mkdir()
    # The tree's own package first on the path (cwd for -m, and PYTHONPATH), this venv's libraries.
    env = {**_cli_env(work), "PYTHONPATH": str(tree)}
    _register(env, work, "fleet", cwd=tree)
    argv = [*UPGRADER, "plan", "fleet", "--to", target, "--state", str(state), "--max-unavailable", "50"]
    errors = [work / f"run-{i}.err" for i in range(BUSY_RUNS)]
    start = time.perf_counter()
    runs = []
    for err in errors:
        with err.open("w") as stderr:
            runs.append(subprocess.Popen(argv, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=stderr))
    ended: dict[int, float] = {}
    while len(ended) < len(runs):
        for i, run in enumerate(runs):
            if i not in ended and run.poll() is not None:
                ended[i] = time.perf_counter() - start
        time.sleep(0.02)
    wall = time.perf_counter() - start
    codes = [run.returncode for run in runs]
    with sqlite3.connect(work / "ledger.db") as conn:
        stored = conn.execute("SELECT count(*) FROM plans").fetchone()[0]
    conn.close()
    latencies = sorted(ended.values())
    tally = ", ".join(f"{code}: {codes.count(code)}" for code in sorted(set(codes)))
    per_plan = f"{wall / stored:5.1f} s" if stored else "    -"
    print(f"  {label:<20} ok {codes.count(0):>2}/{len(codes)}  exit codes {{{tally}}}  plans stored {stored:>2}  "
          f"wall {wall:5.1f} s ({per_plan} per stored plan)  per run p50 {statistics.median(latencies):5.1f} s  "
          f"max {latencies[-1]:5.1f} s")
    failed = {err.read_text().strip().splitlines()[-1] for err, code in zip(errors, codes, strict=True) if code}
    for line in sorted(failed):
        print(f"    {line}")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _list_nodes_rate(url: str, seconds: float = 3.0) -> tuple[float, int]:
    """Requests per second for GET /api/v1/nodes on one kept-alive connection (bounded in time)."""
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    count, nodes = 0, 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        conn.request("GET", "/api/v1/nodes", headers={"Accept": "application/json"})
        body = conn.getresponse().read()
        count += 1
        nodes = len(json.loads(body)["items"])
    conn.close()
    return count / (time.perf_counter() - start), nodes


def _client_rate(kubeconfig: str, seconds: float = 3.0) -> float:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    count, deadline, start = 0, time.perf_counter() + seconds, time.perf_counter()
    while time.perf_counter() < deadline:
        api.list_node()
        count += 1
    api.api_client.close()
    return count / (time.perf_counter() - start)


def bench_sandbox() -> None:
    for control_planes, workers in ((3, 3), (3, 50)):
        with tempfile.TemporaryDirectory() as tmp:
            env = _cli_env(Path(tmp))
            name = f"bench{workers}"
            argv = [*UPGRADER, "sandbox", "up", name, "--version", "v1.30.6", "--control-planes",
                    str(control_planes), "--workers", str(workers), "-o", "json"]
            try:
                start = time.perf_counter()
                info = json.loads(subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout)
                wall = time.perf_counter() - start
                status = json.loads(subprocess.run([*UPGRADER, "sandbox", "status", name, "-o", "json"], env=env,
                                                   check=True, capture_output=True, text=True).stdout)
                label = f"{control_planes}+{workers}"
                print(f"sandbox up {label:<6} wall {wall:6.2f} s (reported healthy after {info['seconds']} s)")
                time.sleep(2)  # let start-up settle before measuring memory and throughput
                sup = _rss_kib(status["supervisor_pid"])
                children = sum(_rss_kib(p["pid"]) for p in status["processes"].values() if p["alive"])
                print(f"  memory: supervisor {sup / 1024:.0f} MiB, its etcd + apiserver processes "
                      f"{children / 1024:.0f} MiB in all")
                direct = next(iter(status["ports"]["apiserver"].values()))
                rate, nodes = _list_nodes_rate(f"http://127.0.0.1:{direct}")
                print(f"  list nodes ({nodes} nodes), raw HTTP keep-alive, one apiserver directly: {rate:7.1f} req/s")
                rate, _ = _list_nodes_rate(info["server"])
                print(f"  list nodes ({nodes} nodes), raw HTTP keep-alive, via the load balancer: {rate:7.1f} req/s")
                print(f"  list nodes, official python client (CoreV1Api.list_node):       "
                      f"{_client_rate(info['kubeconfig']):7.1f} req/s")
            finally:
                subprocess.run([*UPGRADER, "sandbox", "down", name], env=env, check=False, capture_output=True)


def bench_exec() -> None:
    """One node command, isolated in namespaces (the default) beside the best-effort path rewriting
    (what every sandbox did before), each on its own 1+1 sandbox, in the same run."""
    from upgrader.sandbox import SandboxTransport

    for mode in ("namespace", "best-effort"):
        with tempfile.TemporaryDirectory() as tmp:
            env = _cli_env(Path(tmp))
            name = "benchexec"
            argv = [*UPGRADER, "sandbox", "up", name, "--control-planes", "1", "--workers", "1",
                    "--isolation", mode, "-o", "json"]
            try:
                info = json.loads(subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout)
                time.sleep(3)  # let start-up settle
                print(f"  isolation={mode}")
                exec_argv = [CONSOLE_SCRIPT, "sandbox", "exec", name, "cp-1", "--", "true"]
                bare = [sys.executable, "-c", "pass"]

                def run(cmd: list[str], env: dict[str, str] = env) -> float:
                    start = time.perf_counter()
                    subprocess.run(cmd, env=env, check=True, capture_output=True)
                    return time.perf_counter() - start

                run(exec_argv)  # warm the page cache
                pairs = [(run(exec_argv), run(bare)) for _ in range(21)]
                cmd, floor = [a for a, _ in pairs], [b for _, b in pairs]
                row("upgrader sandbox exec NAME cp-1 -- true", cmd,
                    f"(bare python in turn: median {statistics.median(floor) * 1000:.1f} ms)")
                node = SandboxTransport(Path(info["dir"]), "cp-1")
                row("SandboxTransport.run(['true']) in process", timed(lambda node=node: node.run(["true"], 30), 41))
                row("SandboxTransport.run(['sh', '-c', 'kubeadm version -o short'])",
                    timed(lambda node=node: node.run(["sh", "-c", "kubeadm version -o short"], 30), 11))
            finally:
                subprocess.run([*UPGRADER, "sandbox", "down", name], env=env, check=False, capture_output=True)


def bench_ssh(n: int = 100) -> None:
    """n commands on one node, four ways, in the same run against the same sshd."""
    from tests.integration.sshd import sshd
    from upgrader.domain.node_access import SshTarget
    from upgrader.nodes.ssh import SshTransport

    with tempfile.TemporaryDirectory() as tmp, sshd(Path(tmp) / "sshd") as server:
        known = server.known_hosts()
        common = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
                  "-l", "root", "-p", str(server.port), "-i", str(server.user_key)]

        def each(argv: list[str], env: dict[str, str] | None = None) -> float:
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, env=env)
            return time.perf_counter() - start

        before = server.logins()
        target = SshTarget(address="127.0.0.1", address_from="set", user="root", port=server.port,
                           identity=str(server.user_key), known_hosts=str(known))
        start = time.perf_counter()
        with SshTransport(target, node="cp-1") as node:
            first = timed(lambda: node.run(["true"], 30), 1)
            rest = timed(lambda: node.run(["true"], 30), n - 1)
        in_process = time.perf_counter() - start
        logins = server.logins() - before
        bare = [each(["ssh", *common, "-o", "ControlMaster=no", "-o", "ControlPath=none", "127.0.0.1", "true"])
                for _ in range(n)]
        control = Path(tmp) / "cm"
        subprocess.run(["ssh", *common, "-o", "ControlMaster=yes", "-o", f"ControlPath={control}", "-o",
                        "ControlPersist=60", "-N", "127.0.0.1"], check=True, capture_output=True)
        try:
            muxed = [each(["ssh", *common, "-o", f"ControlPath={control}", "127.0.0.1", "true"]) for _ in range(n)]
        finally:
            subprocess.run(["ssh", *common, "-o", f"ControlPath={control}", "-O", "exit", "127.0.0.1"],
                           check=False, capture_output=True)
        env = _cli_env(Path(tmp))
        kubeconfig = Path(tmp) / "kubeconfig"
        _register(env, Path(tmp), "bench")
        for args in (["cluster", "set", "bench", "--ssh-user", "root", "--ssh-port", str(server.port),
                      "--ssh-identity", str(server.user_key), "--ssh-known-hosts", str(known)],
                     ["cluster", "node-address", "bench", "cp-1", "127.0.0.1"]):
            subprocess.run([CONSOLE_SCRIPT, *args], env=env, check=True, capture_output=True)
        assert kubeconfig.exists()
        cli = [each([CONSOLE_SCRIPT, "node", "exec", "bench", "cp-1", "--", "true"], env) for _ in range(n)]

        total_in, total_bare, total_mux, total_cli = in_process, sum(bare), sum(muxed), sum(cli)
        print(f"ssh: {n} x `true` on one node, loopback sshd (OpenSSH), in the same run")
        row("SshTransport.run(['true']), first (opens the connection)", first)
        row(f"SshTransport.run(['true']), next {n - 1} over that connection", rest)
        row("bare ssh, a new connection each (ControlMaster=no)", bare)
        row("bare ssh client over one open master (ControlPath)", muxed)
        row("`upgrader node exec bench cp-1 -- true` (a process each)", cli)
        print(f"  totals for {n}: SshTransport {total_in:.2f} s ({logins} SSH login{'s' if logins != 1 else ''}); "
              f"bare ssh {total_bare:.2f} s ({n} logins); bare ssh over a master {total_mux:.2f} s; "
              f"node exec processes {total_cli:.2f} s")
        print(f"  ratios: bare ssh / SshTransport = {total_bare / total_in:.1f}x; "
              f"SshTransport / bare-over-master = {total_in / total_mux:.2f}x; "
              f"node exec processes / bare ssh = {total_cli / total_bare:.2f}x")


def _load_objects(endpoint: str, count: int, size: int = 1024) -> None:
    """``count`` ConfigMaps of ``size`` bytes each straight into the sandbox's etcd, 128 puts a txn
    (etcd's default --max-txn-ops), as the apiserver stores them (JSON under /registry/...)."""
    import base64
    import urllib.request

    def put(key: str, value: bytes) -> dict[str, object]:
        return {"request_put": {"key": base64.b64encode(key.encode()).decode(),
                                "value": base64.b64encode(value).decode()}}

    batch: list[dict[str, object]] = []
    for i in range(count):
        name = f"bench-{i:06d}"
        doc = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "bench", "uid": f"00000000-0000-0000-0000-{i:012d}"},
               "data": {"payload": ""}}
        pad = size - len(json.dumps(doc))
        doc["data"] = {"payload": "x" * max(pad, 0)}
        batch.append(put(f"/registry/configmaps/bench/{name}", json.dumps(doc).encode()))
        if len(batch) == 128 or i == count - 1:
            body = json.dumps({"success": batch}).encode()
            request = urllib.request.Request(endpoint.rstrip("/") + "/v3/kv/txn", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()
            batch = []


def bench_snapshot() -> None:
    """`upgrader snapshot create` on a sandbox holding 50,000 objects of 1 KiB, beside a bare
    `etcdctl snapshot save` of the same etcd member, in turn (A B A B ...), in the same run."""
    with tempfile.TemporaryDirectory() as tmp:
        env = _cli_env(Path(tmp))
        name = "benchsnap"
        argv = [*UPGRADER, "sandbox", "up", name, "--control-planes", "1", "--workers", "1", "-o", "json"]
        try:
            subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
            status = json.loads(subprocess.run([*UPGRADER, "sandbox", "status", name, "-o", "json"], env=env,
                                               check=True, capture_output=True, text=True).stdout)
            endpoint = status["etcd_members"][0]["client_urls"][0]
            start = time.perf_counter()
            _load_objects(endpoint, 50_000)
            print(f"  loaded 50,000 objects of 1 KiB in {time.perf_counter() - start:.1f} s ({endpoint})")
            store = Path(tmp) / "store"
            bare_dir = Path(tmp) / "bare"
            bare_dir.mkdir()

            def ours() -> float:
                began = time.perf_counter()
                subprocess.run([*UPGRADER, "snapshot", "create", name, "--store", str(store), "-o", "json"],
                               env=env, check=True, capture_output=True)
                return time.perf_counter() - began

            def bare(n: int) -> float:
                began = time.perf_counter()
                target = bare_dir / f"{n}.db"
                subprocess.run(["etcdctl", "--endpoints", endpoint, "snapshot", "save", str(target)],
                               env={"PATH": os.environ["PATH"], "ETCDCTL_API": "3"}, check=True, capture_output=True)
                target.unlink()
                return time.perf_counter() - began

            ours(), bare(0)  # warm up
            pairs = [(ours(), bare(n)) for n in range(5)]
            a, b = [p[0] for p in pairs], [p[1] for p in pairs]
            ratios = [x / y for x, y in pairs]
            row("upgrader snapshot create (health before/after, status, sha256, artefacts)", a)
            row("bare etcdctl snapshot save", b)
            print(f"  ratio upgrader/bare, pair by pair: median {statistics.median(ratios):.2f}x "
                  f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")
        finally:
            subprocess.run([*UPGRADER, "sandbox", "down", name], env=env, check=False, capture_output=True)

if __name__ == "__main__":
    args = sys.argv[1:]
    baseline = None
    if "--baseline" in args:
        at = args.index("--baseline")
        baseline = args[at + 1]
        del args[at : at + 2]
    which = {a for a in args if "+" not in a} or {"planner", "cli", "schedule", "sandbox"}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    if "planner" in which:
        bench_planner()
    if "cli" in which:
        bench_cli()
    if "schedule" in which:
        from bench_schedule import bench_schedule  # scripts/ is this script's directory, first on sys.path

        bench_schedule()
    if "sandbox" in which:
        bench_sandbox()
    if "exec" in which:
        bench_exec()
    if "ssh" in which:
        bench_ssh()
    if "snapshot" in which:
        bench_snapshot()
    if "apply" in which:
        from bench_apply import bench_apply  # scripts/ is this script's directory, first on sys.path

        bench_apply()
    if "rollback" in which:
        from bench_rollback import bench_rollback

        bench_rollback([a for a in args if "+" in a])
    if "setup" in which:
        bench_setup()
    if "busy" in which:
        bench_busy(baseline)
