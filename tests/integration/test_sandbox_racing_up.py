"""Racing `sandbox up`s of one new name: exactly one creates the sandbox, the others exit 2 at once.

Five real processes run the real `up` (name lock, claim, node roots, config.json; only the
supervisor is a stand-in, see sandbox_racer.py) released together by a gate, twenty rounds in a
row on one name: each round exactly one creates, the other four are told who is creating it (or
"creating or starting" when they ask before the winner has looked for the sandbox), a
`down` meanwhile is refused the same way, and after the round's `down` the name is free again, so
no round can leave debris that blocks the next. tests/e2e/test_sandbox_racing_up.py races the
real CLI with a real supervisor.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sandbox_helpers import needs_etcd
from upgrader.errors import UsageError
from upgrader.sandbox.lifecycle.down import down

REPO = Path(__file__).resolve().parents[2]
RACERS = 5
ROUNDS = 20
NAME = "race"
WAIT = 60.0  # for one racer's answer; a 2-core machine running the suite can be slow


class Gates:
    """Exclusive flocks the racers wait on: go-N starts round N, hold-N lets its winner finish."""

    def __init__(self, where: Path, rounds: int) -> None:
        self.where = where
        self._held: dict[str, int] = {}
        for i in range(rounds):
            for gate in (f"go-{i}", f"hold-{i}"):
                fd = os.open(where / gate, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._held[gate] = fd

    def open(self, gate: str) -> None:
        fd = self._held.pop(gate, None)
        if fd is not None:
            os.close(fd)

    def open_all(self) -> None:
        for gate in list(self._held):
            self.open(gate)


@contextlib.contextmanager
def racers(env: dict[str, str], gates: Path) -> Iterator[queue.Queue[dict]]:
    """RACERS racer processes; yields the queue of every line they print (with their pid)."""
    lines: queue.Queue[dict] = queue.Queue()
    procs = [subprocess.Popen([sys.executable, "-m", "tests.integration.sandbox_racer", NAME, str(ROUNDS), str(gates)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(RACERS)]

    def read(proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put({**json.loads(line), "pid": proc.pid})

    readers = [threading.Thread(target=read, args=(p,), daemon=True) for p in procs]
    for r in readers:
        r.start()
    try:
        yield lines
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            _, err = p.communicate(timeout=30)
            assert p.returncode in (0, -9), err


def _next(lines: queue.Queue[dict], what: str) -> dict:
    try:
        return lines.get(timeout=WAIT)
    except queue.Empty:
        raise AssertionError(f"no racer answered within {WAIT:.0f}s ({what})") from None


@needs_etcd
def test_one_of_five_racing_ups_creates_and_the_name_stays_usable(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    env = {**os.environ, "XDG_DATA_HOME": str(home), "PYTHONPATH": str(REPO)}
    sandbox_dir = home / "upgrader" / "sandboxes" / NAME
    (tmp_path / "gates").mkdir()
    gates = Gates(tmp_path / "gates", ROUNDS)
    try:
        with racers(env, tmp_path / "gates") as lines:
            for i in range(ROUNDS):
                gates.open(f"go-{i}")
                first = [_next(lines, f"round {i}") for _ in range(RACERS)]
                launched = [a for a in first if a["outcome"] == "launched"]
                others = [a for a in first if a["outcome"] != "launched"]
                assert len(launched) == 1, (i, first)
                winner = launched[0]["pid"]
                for a in others:
                    assert a["outcome"] == "refused" and a["code"] == 2, (i, a)
                    assert re.fullmatch(rf"sandbox {NAME} is being created( or started)? by pid {winner}: "
                                        r"wait for it to finish \(nothing was changed\)", a["message"]), (i, a)
                with pytest.raises(UsageError, match=f"is being created by pid {winner}"):
                    down(NAME)
                assert (sandbox_dir / "config.json").exists()

                gates.open(f"hold-{i}")
                last = _next(lines, f"round {i}'s winner")
                assert (last["pid"], last["outcome"]) == (winner, "created"), (i, last)
                assert not (sandbox_dir / ".creating").exists()

                assert down(NAME) is not None
                assert not sandbox_dir.exists()
    finally:
        gates.open_all()
