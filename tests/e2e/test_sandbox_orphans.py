"""A sandbox whose supervisor was killed is `orphaned` while its etcd and API servers still run.

The supervisor's children run in their own sessions, so SIGKILL to the supervisor leaves them
running. `sandbox status` (and `list`) must say so, naming those processes by pid, instead of
`stopped`; `sandbox down --keep` stops them (status `stopped`), `sandbox down` removes the rest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.e2e.conftest import Cli, eventually
from upgrader.sandbox import processes


def test_a_killed_supervisor_leaves_an_orphaned_sandbox_that_down_reaps(cli: Cli) -> None:
    info = cli.up("orphan", "--control-planes", "1", "--workers", "0")
    state = json.loads((Path(info["dir"]) / "state.json").read_text())
    started = {name: entry["pid"] for name, entry in state["processes"].items()}
    assert set(started) == {"cp-1/etcd", "cp-1/kube-apiserver"}, started

    os.kill(state["pid"], signal.SIGKILL)
    eventually(lambda: not processes.alive(state["pid"]), timeout=10)
    status = cli.status("orphan")
    assert status["status"] == "orphaned" and status["supervisor_pid"] is None, status
    assert {o["process"]: o["pid"] for o in status["orphans"]} == started
    assert all(processes.alive(pid) for pid in started.values())
    assert any(o["command"].startswith("etcd ") for o in status["orphans"])
    text = cli.run("sandbox", "status", "orphan").stdout
    assert text.startswith("sandbox orphan: orphaned") and str(started["cp-1/etcd"]) in text, text
    listed = json.loads(cli.run("sandbox", "list", "-o", "json").stdout)
    assert [(s["name"], s["status"]) for s in listed] == [("orphan", "orphaned")]

    cli.run("sandbox", "down", "orphan", "--keep")
    assert not any(processes.alive(pid) for pid in started.values())
    status = cli.status("orphan")
    assert (status["status"], status["orphans"]) == ("stopped", []), status

    # Someone's process that merely names a node's file is not the sandbox's: not listed, not stopped.
    watcher = subprocess.Popen(["tail", "-f", str(Path(info["dir"]) / "nodes" / "cp-1" / "etc" / "hostname")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status = cli.status("orphan")
        assert (status["status"], status["orphans"]) == ("stopped", []), status
        cli.run("sandbox", "down", "orphan", "--keep")
        assert watcher.poll() is None, "down stopped a process that was not the sandbox's"
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)

    cli.run("sandbox", "down", "orphan")
    gone = cli.run("sandbox", "status", "orphan", "-o", "json", check=False)
    assert gone.returncode == 2 and "no sandbox named 'orphan'" in gone.stderr, gone.stderr
    assert not Path(info["dir"]).exists()
