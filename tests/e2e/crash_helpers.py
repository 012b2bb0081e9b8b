"""What the crash tests share: the run's ledger read straight from its SQLite file (read-only, fast
enough to poll every few milliseconds), the processes an upgrader left behind on the nodes (found by
the process group each upgrader was started in), and a sampler that counts the kubeadm upgrades
running at once.

Node commands keep the process group of the upgrader that started them (nothing between them starts
a session), so a killed upgrader's node commands are still findable by its pid: an orphan kubeadm is
one of them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

TOOLS_MODULE = "upgrader.sandbox.node.tools"  # what a sandbox node's wrappers run: `python -m ... kubeadm ...`


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    pgid: int
    argv: tuple[str, ...]


def processes(pgids: set[int] | frozenset[int]) -> list[Proc]:
    """The live (not zombie) processes of these process groups."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                state, _ppid, pgid = f.read().rsplit(")", 1)[1].split()[:3]
            if int(pgid) not in pgids or state in ("Z", "X"):
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = tuple(f.read().decode(errors="replace").split("\0")[:-1])
        except (OSError, ValueError):
            continue  # it ended while we looked
        found.append(Proc(int(entry.name), int(pgid), argv))
    return found


def has_words(argv: tuple[str, ...], *words: str) -> bool:
    """argv holds these words in a row (``apt-get install``), wherever it starts."""
    n = len(words)
    return any(argv[i:i + n] == words for i in range(len(argv) - n + 1))


def kubeadm_upgrade(argv: tuple[str, ...]) -> str | None:
    """``apply`` or ``node`` when argv is a kubeadm upgrade itself (on a real node ``kubeadm upgrade
    apply ...``; on a sandbox node the wrapper's ``python -m upgrader.sandbox.node.tools kubeadm upgrade
    apply ...``), None for anything else, including whatever started it (unshare, a lock)."""
    for i, word in enumerate(argv):
        itself = (i == 0 and os.path.basename(word) == "kubeadm") or (
            word == "kubeadm" and i > 0 and argv[i - 1] == TOOLS_MODULE)
        if itself and argv[i + 1:i + 2] == ("upgrade",) and argv[i + 2:i + 3] in (("apply",), ("node",)):
            return argv[i + 2]
    return None


class Ledger:
    """The run's steps, read from the ledger file (never written: the connection is read-only)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5,
                                     isolation_level=None)) as db:
            return db.execute(sql, args).fetchall()

    def run_id(self) -> int | None:
        rows = self._rows("SELECT id FROM runs ORDER BY id DESC LIMIT 1") if self.path.exists() else []
        return int(rows[0][0]) if rows else None  # type: ignore[call-overload]

    def steps(self, run_id: int) -> dict[int, tuple[str, str | None, str]]:
        """n -> (action, node, status)."""
        rows = self._rows("SELECT n, action, node, status FROM run_steps WHERE run_id = ?", run_id)
        return {int(n): (str(a), None if node is None else str(node), str(s))  # type: ignore[call-overload]
                for n, a, node, s in rows}


@dataclass
class KubeadmSampler:
    """Every ``every`` seconds: the kubeadm upgrades running in the watched process groups."""

    every: float = 0.1
    pgids: frozenset[int] = frozenset()
    most: int = 0
    together: list[list[Proc]] = field(default_factory=list)  # samples with more than one at once
    seen: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, pgid: int) -> None:
        self.pgids = self.pgids | {pgid}  # replaced, never changed in place: the thread reads it unlocked

    def __enter__(self) -> KubeadmSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            running = [p for p in processes(self.pgids) if kubeadm_upgrade(p.argv)]
            self.seen.update(p.pid for p in running)
            self.most = max(self.most, len(running))
            if len(running) > 1:
                self.together.append(running)
