"""The sandboxes root, private to its user, and the locks that keep two commands off one sandbox.

Sandboxes hold etcd data, kubeconfigs and node roots, so the root and every directory `up` makes
are 0700. ``.locks/NAME.lock`` holds an flock while an `up` or `down` of NAME is at work: `up` takes
it before it looks for the sandbox and keeps it until the sandbox is healthy or cleaned away, so of
several racing `up`s exactly one creates (or resumes) the sandbox and the others are refused at
once, told the holder's pid. The kernel drops an flock when its holder dies, however it dies, so a
lock is never stale: whatever a killed `up` left is debris, never a creation still at work. Lock
files stay (unlinking one while another process waits on it would let two holders in); the fd is
close-on-exec, so the supervisor `up` starts never inherits the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from upgrader.domain.names import validate_name
from upgrader.errors import UsageError
from upgrader.sandbox.lifecycle.errors import SandboxBusyError

PRIVATE = 0o700
LOCKS = ".locks"
# How long a refused command waits for the lock holder to write its pid (it does so at once).
_HOLDER_WAIT = 1.0


def default_root() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "upgrader" / "sandboxes"


def private_dir(path: Path) -> Path:
    """Make ``path`` a directory only its owner can enter: 0700, whatever the umask. Missing parents
    are made 0700 too (``$XDG_DATA_HOME/upgrader`` also holds the ledger); existing ones are left."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by a racing command: then it is theirs
            directory.mkdir(mode=PRIVATE)
            os.chmod(directory, PRIVATE)
    if not path.is_dir():
        path.mkdir()  # raises what mkdir says about a file in the way
    os.chmod(path, PRIVATE)
    return path


def ensure_root() -> Path:
    """The sandboxes root, created 0700 when missing; exit 2 when it cannot be a directory."""
    root = default_root()
    try:
        return private_dir(root)
    except OSError as e:
        raise UsageError(f"cannot use {root} for sandboxes: {e.strerror} (set XDG_DATA_HOME elsewhere)") from e


@contextlib.contextmanager
def flocked(path: Path) -> Iterator[int]:
    """Hold an exclusive flock on ``path`` (waiting for it), for short read-modify-writes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


class NameLock:
    """The lock of one sandbox name, held by the `up` or `down` at work on it (see the module docstring)."""

    def __init__(self, name: str, *, doing: str) -> None:
        self.name = validate_name(name, what="sandbox")  # before it names a file
        self.doing = doing  # what the holder is doing, as refused commands are told: "created", "stopped"
        self.path = ensure_root() / LOCKS / f"{name}.lock"
        self._fd: int | None = None

    def __enter__(self) -> NameLock:
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise SandboxBusyError(f"sandbox {self.name} is being {holder}: wait for it to finish "
                                   f"(nothing was changed)") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.say(self.doing)
        return self

    def say(self, doing: str) -> None:
        """Tell refused commands what the holder is doing now (an `up` learns late whether it creates or resumes)."""
        assert self._fd is not None
        self.doing = doing
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()} {doing}".encode(), 0)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # only a holder's file has content: a refused command never reads a past one
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def _holder(fd: int) -> str:
        """"created by pid N" from the lock file; the holder writes it right after it locked."""
        deadline = time.monotonic() + _HOLDER_WAIT
        while True:
            pid, _, doing = os.pread(fd, 200, 0).decode(errors="replace").partition(" ")
            if pid.isdigit() and doing:
                return f"{doing} by pid {pid}"
            if time.monotonic() > deadline:
                return "created, started or stopped by another `upgrader sandbox` command"
            time.sleep(0.01)
