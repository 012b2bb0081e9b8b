"""End-to-end fixtures: whole `upgrader sandbox` flows through the real CLI, real etcd and kubectl.

Every sandbox a test starts is stopped (by the CLI, by pid) when the test ends, and lives under the
test's own tmp dir with its own ledger, so tests never see each other's clusters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _need(binary: str) -> None:
    if shutil.which(binary) is None and not Path(f"/usr/bin/{binary}").exists():
        # A missing tool is a broken test machine, not a reason to pass quietly.
        pytest.fail(f"{binary} is not installed (scripts/test.sh installs it)")


@dataclass
class Cli:
    """Runs `python -m upgrader ...` with an isolated ledger and sandbox root."""

    home: Path
    started: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPGRADER_", "KUBECONFIG"))}
        # Gates of runs without apply's flags (rollbacks, renewals, runbooks, ticks) read twice, 0.5 s apart:
        # a sandbox does not flap, and the production pace (3 readings 2 s apart) costs minutes of the suite.
        return env | {"XDG_DATA_HOME": str(self.home), "UPGRADER_DB": str(self.home / "ledger.db"),
                      "PYTHONPATH": str(REPO), "UPGRADER_GATE_INTERVAL": "0.5", "UPGRADER_GATE_PASSES": "2"}

    def run(self, *args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "upgrader", *args], capture_output=True, text=True,
                              env=self.env, cwd=REPO, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"upgrader {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
                                 + self.diagnostics(args[2] if args[:1] == ("sandbox",) and len(args) > 2 else None))
        return done

    def diagnostics(self, name: str | None) -> str:
        """The last lines of a sandbox's supervisor log and of its nodes' pod logs, to explain a failure."""
        if name is None:
            return ""
        root = self.home / "upgrader" / "sandboxes" / name
        logs = [root / "supervisor.log", *sorted(root.glob("nodes/*/var/log/pods/*.log"))]
        parts = []
        status = subprocess.run([sys.executable, "-m", "upgrader", "sandbox", "status", name, "-o", "json"],
                                capture_output=True, text=True, env=self.env, cwd=REPO, timeout=60, check=False)
        parts.append(f"--- sandbox status\n{status.stdout}{status.stderr}")
        for port in json.loads(status.stdout or "{}").get("ports", {}).get("apiserver", {}).values():
            for path in ("/version", "/readyz?verbose"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
                        body = resp.read().decode(errors="replace")
                except urllib.error.HTTPError as e:
                    body = f"HTTP {e.code}: {e.read().decode(errors='replace')}"
                except OSError as e:
                    body = f"unreachable: {e}"
                parts.append(f"--- apiserver :{port}{path}\n{body}")
        supervisor = root / "supervisor.log"
        if supervisor.is_file():
            trouble = [line for line in supervisor.read_text(errors="replace").splitlines()
                       if any(w in line.lower() for w in ("warning", "error", "traceback", "exception", "failed"))]
            parts.append(f"--- supervisor.log: its last {len(trouble[-40:])} warnings and errors\n"
                         + "\n".join(trouble[-40:]))
        for log in logs:
            if log.is_file():
                tail = log.read_text(errors="replace").splitlines()[-25:]
                parts.append(f"--- {log.relative_to(root)} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n" + "\n".join(parts) if parts else ""

    def up(self, name: str, *args: str) -> dict:
        self.started.append(name)
        # kubeadm waits for a new static pod: 90 s leaves room on a loaded 2-core machine. (Its
        # occasional timeouts were the kubelet pairing an old manifest with a new file's hash, fixed
        # in static_pods.sync.) Fault tests that expect the wait to run out pass a shorter
        # --kubeadm-timeout (the last one given wins).
        out = self.run("sandbox", "up", name, "-o", "json", "--kubeadm-timeout", "90s", *args)
        return json.loads(out.stdout)

    def exec(self, name: str, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("sandbox", "exec", name, node, "--", *argv, check=check)

    def status(self, name: str) -> dict:
        return json.loads(self.run("sandbox", "status", name, "-o", "json").stdout)

    def kubectl(self, kubeconfig: str, *args: str, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def down_all(self) -> None:
        for name in reversed(self.started):
            self.run("sandbox", "down", name, check=False)


@pytest.fixture
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    _need("etcd")
    _need("kubectl")
    c = Cli(tmp_path_factory.mktemp("upgrader-home"))
    try:
        yield c
    finally:
        c.down_all()


@pytest.fixture(scope="module")
def mcli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A Cli shared by the tests of one module (their sandboxes too), stopped when the module ends."""
    _need("etcd")
    _need("kubectl")
    c = Cli(tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-home"))
    try:
        yield c
    finally:
        c.down_all()


def eventually(check: Callable[[], object], *, timeout: float = 30, every: float = 0.3) -> object:
    """Poll until check() returns something truthy; the last failure explains a timeout."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s: {last!r}")
