"""``state.json``: what the running supervisor records every second, for `sandbox status` and `sandbox down`.

The supervisor writes its own pid, its status (starting, running, stopping, stopped, failed), the
load balancer's view of the API servers, and the pid of every process it started, so the sandbox
can be reported on, and stopped by pid, even after the supervisor crashed. A recorded pid counts
only while its command line still names the supervisor and the sandbox: pids are recycled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from upgrader.files import atomic_write
from upgrader.sandbox import processes

STATE = "state.json"
# What `python -m` runs as the supervisor, and so the mark of its command line.
SUPERVISOR = "upgrader.sandbox.supervisor"


def read_state(sandbox_dir: Path) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], json.loads((Path(sandbox_dir) / STATE).read_text()))
    except (OSError, ValueError):
        return {}


def write_state(sandbox_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(Path(sandbox_dir) / STATE, json.dumps(state, indent=1, sort_keys=True).encode())


def supervisor_pid(sandbox_dir: Path) -> int | None:
    """The pid of this sandbox's running supervisor, or None."""
    pid = read_state(sandbox_dir).get("pid")
    if not isinstance(pid, int) or not processes.owned(pid, SUPERVISOR):
        return None
    return pid if str(sandbox_dir) in processes.cmdline(pid) else None
