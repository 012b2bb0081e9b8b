"""Child processes of the sandbox (etcd members, API servers), started and stopped by pid only.

Children get their own session so that a Ctrl-C aimed at the CLI never reaches them behind the
supervisor's back, and their pids are recorded so ``sandbox down`` can stop them even after the
supervisor died. A recorded pid is only signalled while its command line still names the sandbox:
pids are recycled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

_POPEN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    _POPEN[proc.pid] = proc
    return proc.pid


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    proc = _POPEN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def owned(pid: int | None, marker: str) -> bool:
    """Whether pid is alive and still the process we started (its command line mentions marker)."""
    return bool(pid) and alive(pid) and marker in cmdline(pid)  # type: ignore[arg-type]


def stop(pid: int | None, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after timeout; reaps our own children. A pid already gone is fine."""
    stop_all([pid], timeout=timeout)


def stop_all(pids: Sequence[int | None], *, timeout: float = 10.0) -> None:
    """:func:`stop` for several processes at once: all get SIGTERM, then share one ``timeout``."""
    signalled = []
    for pid in pids:
        if not pid:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
        except ProcessLookupError:
            _reap(pid)
    deadline = time.monotonic() + timeout
    for pid in signalled:
        if not wait_gone(pid, max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5.0)
        _reap(pid)


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether pid exited (or is a zombie) within timeout."""
    proc = _POPEN.get(pid)
    if proc is not None:
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def _reap(pid: int) -> None:
    proc = _POPEN.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1)
