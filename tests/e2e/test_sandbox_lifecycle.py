"""Lifecycle safety: an interrupted `up` leaves nothing running and no half-made sandbox; a crashed
supervisor loses no etcd data and `up` resumes the stopped sandbox as it is (refusing options that
would change it); `down --keep` keeps the files for a later resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def _ctrl_c_reaches_it() -> None:
    """In the child before exec: SIGINT back to its default. A shell starts background jobs with SIGINT
    ignored and children inherit that, so under `scripts/test.sh &` a Ctrl-C could never reach `up`,
    which a person at a terminal always can."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_up_leaves_nothing_running(cli: Cli, sig: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "upgrader", "sandbox", "up", "halfway", "--workers", "1"],
                            env=cli.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_reaches_it)
    state = cli.home / "upgrader" / "sandboxes" / "halfway" / "state.json"
    eventually(lambda: state.exists() and json.loads(state.read_text()).get("processes"), timeout=30, every=0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not state.parent.exists()
    assert _ours(cli.home) == []
    assert json.loads(cli.run("sandbox", "list", "-o", "json").stdout) == []
    assert json.loads(cli.run("cluster", "list", "-o", "json").stdout) == []


def _interrupt_up(cli: Cli, name: str, *, after: float | None = None, when_dir_appears: bool = False,
                  sig: int = signal.SIGINT) -> subprocess.Popen[str]:
    """Start `sandbox up NAME` and send it ``sig`` ``after`` seconds, or as soon as its directory exists."""
    sandbox_dir = cli.home / "upgrader" / "sandboxes" / name
    proc = subprocess.Popen([sys.executable, "-m", "upgrader", "sandbox", "up", name, "--control-planes", "3",
                             "--workers", "1"], env=cli.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_ctrl_c_reaches_it)
    if when_dir_appears:
        deadline = time.monotonic() + 30
        while not sandbox_dir.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
    else:
        time.sleep(after or 0)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    return proc


def _assert_no_sandbox(cli: Cli, name: str) -> None:
    assert not (cli.home / "upgrader" / "sandboxes" / name).exists()
    assert _ours(cli.home) == []
    assert json.loads(cli.run("sandbox", "list", "-o", "json").stdout) == []
    assert json.loads(cli.run("cluster", "list", "-o", "json").stdout) == []


def test_up_interrupted_in_its_first_half_second_leaves_no_sandbox(cli: Cli) -> None:
    """Creating the node roots and the kubeconfig is interruptible too: nothing half-made remains."""
    for delay in (0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5):
        proc = _interrupt_up(cli, "b2", after=delay)
        assert proc.returncode != 0, delay
        _assert_no_sandbox(cli, "b2")
    proc = _interrupt_up(cli, "b2", when_dir_appears=True)
    assert proc.returncode == 130
    _assert_no_sandbox(cli, "b2")
    info = cli.up("b2", "--control-planes", "3", "--workers", "1")
    assert info["resumed"] is False
    nodes = cli.kubectl(info["kubeconfig"], "get", "nodes", "-o", "name").stdout.split()
    assert nodes == ["node/cp-1", "node/cp-2", "node/cp-3", "node/worker-1"]


def test_up_killed_while_creating_leaves_debris_the_next_up_clears(cli: Cli) -> None:
    """SIGKILL gives `up` no chance to clean up; without a config.json the debris is no sandbox."""
    proc = _interrupt_up(cli, "b3", when_dir_appears=True, sig=signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(cli.run("sandbox", "list", "-o", "json").stdout) == []
    info = cli.up("b3", "--control-planes", "1", "--workers", "0")
    assert info["resumed"] is False
    assert not (Path(info["dir"]) / ".creating").exists()


def test_bad_values_exit_2_with_the_right_message(cli: Cli) -> None:
    cases = {
        ("--api-port", "70000"): "--api-port 70000 is not a TCP port (1-65535)",
        ("--api-port", "0"): "--api-port 0 is not a TCP port (1-65535)",
        ("--version", "v2.0.0"): "unknown Kubernetes version v2.0.0: no such release",
        ("--version", "v1.99"): "unknown Kubernetes version v1.99: no such release",
        ("--version", "v1.23"): "version v1.23 is older than the sandbox supports",
    }
    for args, message in cases.items():
        done = cli.run("sandbox", "up", "bad", *args, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip() == f"error: {message}" or message in done.stderr, (args, done.stderr)
        assert "unexpected" not in done.stderr
    assert not (cli.home / "upgrader" / "sandboxes" / "bad").exists()


def test_supervisor_crash_keeps_etcd_data_and_up_resumes(cli: Cli) -> None:
    info = cli.up("crashy", "--control-planes", "3", "--workers", "1")
    cli.kubectl(info["kubeconfig"], "create", "configmap", "survivor", "--from-literal=k=v")
    os.kill(cli.status("crashy")["supervisor_pid"], signal.SIGKILL)
    eventually(lambda: cli.status("crashy")["status"] == "orphaned")  # its etcd members outlive it
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
    assert [(s["name"], s["status"], s["version"], s["version_source"]) for s in listed] == [
        ("kept", "stopped", "v1.30.6", "last-known")]
    assert "v1.30.6 (last known)" in cli.run("sandbox", "list").stdout

    # resuming cannot change what the sandbox is: refused, not silently ignored
    for args, message in {("--version", "v1.31.4"): "--version v1.31.4 (it is at v1.30.6)",
                          ("--control-planes", "3"): "--control-planes 3 (it has 1)",
                          ("--workers", "2"): "--workers 2 (it has 1)",
                          ("--kubeadm-timeout", "1h"): "--kubeadm-timeout 3600s (it has "}.items():
        done = cli.run("sandbox", "up", "kept", *args, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert "`up` resumes it as it is" in done.stderr and message in done.stderr, (args, done.stderr)
    assert _ours(cli.home) == []

    # a fault for a stopped sandbox waits for its next `up`; one that would keep `up` from succeeding is refused
    blocked = cli.run("sandbox", "fault", "kept", "etcd-member-down:cp-1", check=False)
    assert blocked.returncode == 2 and "no quorum" in blocked.stderr, blocked.stderr
    pending = json.loads(cli.run("sandbox", "fault", "kept", "drain-blocked:worker-1", "-o", "json").stdout)
    assert pending == {"name": "kept", "faults": ["drain-blocked:worker-1"], "pending": ["drain-blocked:worker-1"]}

    started = time.monotonic()
    resumed = cli.up("kept", "--version", "v1.30.6", "--control-planes", "1", "--workers", "1")
    assert resumed["resumed"] is True and resumed["version"] == "v1.30.6"
    assert time.monotonic() - started < 60
    cli.kubectl(info["kubeconfig"], "get", "namespace", "team-a")
    eventually(lambda: cli.kubectl(info["kubeconfig"], "get", "pdb", "-n", "demo", "pinned-worker-1",
                                   check=False).returncode == 0)
    assert [c["name"] for c in json.loads(cli.run("cluster", "list", "-o", "json").stdout)] == ["kept"]
    cli.run("sandbox", "down", "kept")
    again = cli.run("sandbox", "down", "kept")
    assert "nothing to stop" in again.stdout
    assert not Path(info["dir"]).exists()
