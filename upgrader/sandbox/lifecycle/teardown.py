"""Stopping a sandbox: by recorded pid only, after checking each pid still belongs to it.

The supervisor stops its own children; whatever outlived it (a crashed or killed supervisor) is found
from state.json's recorded pids and, as a last resort, by the owner marker in a process's
environment (``UPGRADER_SANDBOX_OWNER=<sandbox dir>``) or the sandbox's node dirs in its command line.
"""

from __future__ import annotations

import os
from pathlib import Path

from upgrader.sandbox import procs
from upgrader.sandbox.config import read_state

OWNER_ENV = "UPGRADER_SANDBOX_OWNER"
SUPERVISOR = "upgrader.sandbox.supervisor"


def supervisor_pid(sandbox_dir: Path) -> int | None:
    pid = read_state(sandbox_dir).get("pid")
    if not isinstance(pid, int) or not procs.owned(pid, SUPERVISOR):
        return None
    return pid if str(sandbox_dir) in procs.cmdline(pid) else None


def _strays(sandbox_dir: Path) -> list[int]:
    """Processes started for this sandbox (by env marker or data dir in argv) that are still alive."""
    marker = f"{OWNER_ENV}={sandbox_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), os.getppid()):
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") or str(sandbox_dir / "nodes") in procs.cmdline(int(entry.name)):
            found.append(int(entry.name))
    return found


def stop_processes(sandbox_dir: Path) -> None:
    """Stop the supervisor (it stops its children), then anything of this sandbox still alive."""
    pid = supervisor_pid(sandbox_dir)
    if pid:
        procs.stop(pid, timeout=30)
    for entry in read_state(sandbox_dir).get("processes", {}).values():
        if procs.owned(entry.get("pid"), entry.get("marker", "\0")):
            procs.stop(entry["pid"])
    for stray in _strays(sandbox_dir):
        procs.stop(stray)
