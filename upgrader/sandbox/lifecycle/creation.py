"""A sandbox being created: its directory claimed by a ``.creating`` file, discarded whole on failure.

A new sandbox commits with its ``config.json``, written last: a directory without one is never a
sandbox. While it is being filled it holds ``.creating`` with the creator's pid, so a later `up` can
tell the debris of a creator that was killed outright (SIGKILL, power loss) from another `up` still
at work, and clears the debris. Cleanup runs with SIGINT/SIGTERM held off, so a second Ctrl-C cannot
leave half a sandbox.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from upgrader.errors import UsageError
from upgrader.sandbox import processes
from upgrader.sandbox.lifecycle.errors import SandboxExistsError
from upgrader.sandbox.lifecycle.teardown import stop_processes
from upgrader.sandbox.sandbox_config import CONFIG

CREATING = ".creating"


class Creation:
    """The directory of a sandbox being created: claimed by a ``.creating`` file, discarded on failure."""

    def __init__(self, sandbox_dir: Path) -> None:
        self.dir = sandbox_dir
        self.made_dir = False
        self.claimed = False

    def claim(self, name: str) -> None:
        if self.dir.exists() and any(self.dir.iterdir()):
            if not self.is_debris(name):
                raise UsageError(f"{self.dir} exists and is not empty: choose another --dir")
            stop_processes(self.dir)
            shutil.rmtree(self.dir)
        if not self.dir.exists():
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            self.dir.mkdir()
            self.made_dir = True
        try:
            fd = os.open(self.dir / CREATING, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            raise SandboxExistsError(f"sandbox {name!r} is being created by another `upgrader sandbox up`") from None
        self.claimed = True
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))

    def committed(self) -> None:
        """The sandbox's config.json is written: from here on it is a sandbox, not a creation."""
        (self.dir / CREATING).unlink()

    def is_debris(self, name: str) -> bool:
        """Whether the directory is what a killed `up` left of a sandbox it never finished creating."""
        if (self.dir / CONFIG).exists():
            return False
        try:
            pid = int((self.dir / CREATING).read_text().strip() or 0)
        except (OSError, ValueError):
            return False
        if pid and pid != os.getpid() and processes.alive(pid) and "upgrader" in processes.cmdline(pid):
            raise SandboxExistsError(f"sandbox {name!r} is being created by another `upgrader sandbox up` (pid {pid})")
        return True

    def discard(self) -> None:
        if self.claimed:
            if self.made_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            else:  # an empty directory the user gave with --dir: leave it empty
                for entry in list(self.dir.iterdir()):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
        elif self.made_dir:
            # This process made the directory, so all in it is ours: an interrupt can land between
            # creating the .creating file and recording the claim, leaving it behind.
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM off while cleaning up, so a second Ctrl-C cannot leave half a sandbox."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda *_: None) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
