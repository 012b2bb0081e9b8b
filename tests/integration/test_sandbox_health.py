"""Waiting for a freshly spawned supervisor: a slow start is not an exit, an exit is reported at once."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from upgrader.sandbox import processes
from upgrader.sandbox.lifecycle.errors import SandboxStartError
from upgrader.sandbox.lifecycle.health import SUPERVISOR_LOG, wait_healthy
from upgrader.sandbox.sandbox_config import SandboxConfig, new_config


def _cfg(tmp_path: Path) -> SandboxConfig:
    return new_config(name="h", sandbox_dir=tmp_path, version="v1.30.6", control_planes=1, workers=0)


def test_a_supervisor_still_importing_is_waited_for_not_reported_as_exited(tmp_path: Path) -> None:
    # No state.json for its first seconds, as with a real supervisor on a loaded machine.
    pid = processes.spawn([sys.executable, "-c", "import time; time.sleep(30)"], log=tmp_path / SUPERVISOR_LOG)
    try:
        with pytest.raises(SandboxStartError, match=r"did not become healthy within 1\.5s: the supervisor has not"):
            wait_healthy(_cfg(tmp_path), supervisor=pid, timeout=1.5)
    finally:
        processes.stop(pid)
    assert not processes.alive(pid)


def test_a_supervisor_that_exits_is_reported_at_once_with_its_log(tmp_path: Path) -> None:
    pid = processes.spawn([sys.executable, "-c", "import sys; print('cannot bind'); sys.exit(3)"],
                          log=tmp_path / SUPERVISOR_LOG)
    started = time.monotonic()
    with pytest.raises(SandboxStartError, match=r"(?s)supervisor exited.*cannot bind"):
        wait_healthy(_cfg(tmp_path), supervisor=pid, timeout=60)
    assert time.monotonic() - started < 30
