"""Lifecycle safety: an interrupted `up` leaves nothing running; a crashed supervisor loses no etcd data
and `up` resumes the stopped sandbox; `down --keep` keeps the files for a later resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import REPO, Cli, eventually


def _ours(home: Path) -> list[str]:
    """Command lines of live processes that belong to sandboxes under home."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if (str(home).encode() in environ and "upgrader.sandbox" in cmdline) or str(home) in cmdline:
            out.append(cmdline)
    return out


def test_interrupted_up_leaves_nothing_running(cli: Cli) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "upgrader", "sandbox", "up", "halfway", "--workers", "1"],
                            env=cli.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = cli.home / "upgrader" / "sandboxes" / "halfway" / "state.json"
    eventually(lambda: state.exists() and json.loads(state.read_text()).get("processes"), timeout=30, every=0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not state.parent.exists()
    assert _ours(cli.home) == []
    assert json.loads(cli.run("sandbox", "list", "-o", "json").stdout) == []
    assert json.loads(cli.run("cluster", "list", "-o", "json").stdout) == []


def test_supervisor_crash_keeps_etcd_data_and_up_resumes(cli: Cli) -> None:
    info = cli.up("crashy", "--control-planes", "3", "--workers", "1")
    cli.kubectl(info["kubeconfig"], "create", "configmap", "survivor", "--from-literal=k=v")
    os.kill(cli.status("crashy")["supervisor_pid"], signal.SIGKILL)
    eventually(lambda: cli.status("crashy")["status"] == "stopped")
    resumed = cli.up("crashy")
    assert resumed["resumed"] is True
    got = cli.kubectl(info["kubeconfig"], "get", "configmap", "survivor", "-o", "jsonpath={.data.k}")
    assert got.stdout == "v"
    assert all(p["alive"] for p in cli.status("crashy")["processes"].values())


def test_down_keep_then_up_resumes_and_down_is_idempotent(cli: Cli) -> None:
    info = cli.up("kept", "--control-planes", "1", "--workers", "1")
    cli.kubectl(info["kubeconfig"], "create", "namespace", "team-a")
    cli.run("sandbox", "down", "kept", "--keep")
    assert _ours(cli.home) == []
    assert json.loads(cli.run("cluster", "list", "-o", "json").stdout) == []
    listed = json.loads(cli.run("sandbox", "list", "-o", "json").stdout)
    assert [(s["name"], s["status"]) for s in listed] == [("kept", "stopped")]
    started = time.monotonic()
    assert cli.up("kept")["resumed"] is True
    assert time.monotonic() - started < 60
    cli.kubectl(info["kubeconfig"], "get", "namespace", "team-a")
    assert [c["name"] for c in json.loads(cli.run("cluster", "list", "-o", "json").stdout)] == ["kept"]
    cli.run("sandbox", "down", "kept")
    again = cli.run("sandbox", "down", "kept")
    assert "nothing to stop" in again.stdout
    assert not Path(info["dir"]).exists()
