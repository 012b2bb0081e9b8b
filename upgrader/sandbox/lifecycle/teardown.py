"""Stopping a sandbox's processes: by recorded pid only, after checking each pid still belongs to it.

The supervisor stops its own children; whatever outlived it (a crashed or killed supervisor) is found
from state.json's recorded pids and, as a last resort, by the owner marker in a process's
environment (``UPGRADER_SANDBOX_OWNER=<sandbox dir>``) or, for a node command's namespace, the
isolation entry point and a node root of this sandbox in its command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from upgrader.sandbox import processes
from upgrader.sandbox.node.isolation import NSINIT
from upgrader.sandbox.supervisor.state import read_state, supervisor_pid

OWNER_ENV = "UPGRADER_SANDBOX_OWNER"  # set for the supervisor, so inherited by all it starts


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
        if marker in environ.split(b"\0") or _node_command(processes.cmdline(int(entry.name)), sandbox_dir):
            found.append(int(entry.name))
    return found


def _node_command(cmdline: str, sandbox_dir: Path) -> bool:
    """A node command's namespace (``unshare ... nsinit.py NODE <sandbox>/nodes/NODE ...``): ours. Any
    other process that merely names a node's file (someone's ``tail -f``) is not."""
    return NSINIT.name in cmdline and f" {sandbox_dir / 'nodes'}/" in cmdline


def orphans(sandbox_dir: Path) -> list[dict[str, Any]]:
    """Processes of this sandbox still alive without its supervisor (ask only when it is not running).

    Recorded ones by their state.json name (``cp-1/etcd``), others by their program; the pids are
    what :func:`stop_processes` would stop.
    """
    found: dict[int, str] = {}
    for label, entry in read_state(sandbox_dir).get("processes", {}).items():
        if processes.owned(entry.get("pid"), entry.get("marker", "\0")):
            found[entry["pid"]] = label
    for stray in _strays(sandbox_dir):
        found.setdefault(stray, Path(processes.cmdline(stray).split(" ", 1)[0]).name or "?")
    return [{"pid": pid, "process": label, "command": processes.cmdline(pid).strip()}
            for pid, label in sorted(found.items())]


def stop_processes(sandbox_dir: Path) -> None:
    """Stop the supervisor (it stops its children), then anything of this sandbox still alive."""
    pid = supervisor_pid(sandbox_dir)
    if pid:
        processes.stop(pid, timeout=30)
    for entry in read_state(sandbox_dir).get("processes", {}).values():
        if processes.owned(entry.get("pid"), entry.get("marker", "\0")):
            processes.stop(entry["pid"])
    for stray in _strays(sandbox_dir):
        processes.stop(stray)
