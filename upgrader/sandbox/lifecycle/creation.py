"""A sandbox being created: its directory claimed and marked as `up`'s, discarded whole on failure.

`up` claims a sandbox's directory holding the name's lock (see :mod:`.root`) by creating the marker
``.upgrader-sandbox`` (its sandbox's name, and whether `up` made the directory or was given an
empty one) with O_EXCL, so of two `up`s given one directory under different names only one gets it.
The marker is what allows any command to delete sandbox files: never a ``config.json``, which
anyone can write. A new sandbox commits with its ``config.json``, written last (until then
``.creating`` names the creator's pid, for whoever looks). A later `up` or `down` of that name can
only get the lock once the creator is gone, so to it a marked directory without a config.json is
the debris of a killed `up`, which it clears. The directory and the marker are made with
SIGINT/SIGTERM deferred (they take effect right after, once it is recorded what to undo) and
cleanup runs with them held off, so a second Ctrl-C cannot leave half a sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from upgrader.errors import UsageError
from upgrader.sandbox.lifecycle.errors import NotASandboxError, SandboxExistsError
from upgrader.sandbox.lifecycle.root import PRIVATE
from upgrader.sandbox.lifecycle.teardown import stop_processes
from upgrader.sandbox.sandbox_config import CONFIG

CREATING = ".creating"
OWNER = ".upgrader-sandbox"


@dataclass(frozen=True, slots=True)
class Owner:
    """What the marker says: the sandbox `up` made this directory for, and whether `up` made the directory."""

    name: str
    made_dir: bool


def owner(sandbox_dir: Path) -> Owner | None:
    """The marker of a directory `up` claimed; None when `up` never did (or the marker is unreadable)."""
    try:
        data = json.loads((sandbox_dir / OWNER).read_text())
        return Owner(name=str(data["name"]), made_dir=data["made_dir"] is True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def removable(sandbox_dir: Path, name: str) -> Owner:
    """The marker that lets sandbox ``name``'s files be deleted; exit 2 when `up` did not make them."""
    mark = owner(sandbox_dir)
    if mark is None or mark.name != name:
        raise NotASandboxError(
            f"{str(sandbox_dir)!r} was not made by `upgrader sandbox up` for sandbox {name!r} (it has no {OWNER} "
            "naming it), so nothing in it is deleted; `sandbox down --keep` only stops its processes")
    return mark


def remove(sandbox_dir: Path, name: str) -> None:
    """Delete sandbox ``name``'s files: the directory if `up` made it, else only what is in it.

    Refused (exit 2, nothing deleted) unless the marker says `up` made the directory for this sandbox.
    """
    if removable(sandbox_dir, name).made_dir:
        shutil.rmtree(sandbox_dir, ignore_errors=True)
    else:  # a directory the user gave with --dir: leave it, empty
        _empty(sandbox_dir)


def clear_debris(sandbox_dir: Path, name: str, *, in_root: bool) -> bool:
    """Clear what a killed `up` of ``name`` left in its directory; False when that holds something else.

    The caller holds the name's lock, so that `up` is gone. ``in_root``: the directory is NAME in the
    sandboxes root, which only an `up` of NAME makes; there a marker alone that cannot be read is
    what an `up` killed while writing it left, and is cleared too.
    """
    if (sandbox_dir / CONFIG).exists():
        return False
    mark = owner(sandbox_dir)
    if mark is None and in_root and [p.name for p in sandbox_dir.iterdir()] == [OWNER]:
        (sandbox_dir / OWNER).unlink()
        sandbox_dir.rmdir()
        return True
    if mark is None or mark.name != name:
        return False
    stop_processes(sandbox_dir)
    remove(sandbox_dir, name)
    return True


class Creation:
    """The directory of a sandbox being created: claimed by its marker, discarded on failure."""

    def __init__(self, sandbox_dir: Path, *, in_root: bool) -> None:
        self.dir = sandbox_dir
        self.in_root = in_root  # NAME in the sandboxes root (no --dir): only `up NAME` makes or uses it
        self.made_dir = False
        self.claimed = False

    def claim(self, name: str) -> None:
        """Make the directory (or take an empty one) and mark it this sandbox's; exit 2 when it cannot be."""
        try:
            self._claim(name)
        except OSError as e:
            raise UsageError(f"cannot create sandbox {name} in {self.dir}: {_why(self.dir, e)}") from e

    def _claim(self, name: str) -> None:
        if self.dir.is_dir() and any(self.dir.iterdir()) and not clear_debris(self.dir, name, in_root=self.in_root):
            raise self._taken()
        if not self.dir.exists():
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            # another `up` made it just now: the marker decides
            with signals_deferred(), contextlib.suppress(FileExistsError):
                self.dir.mkdir(mode=PRIVATE)
                self.made_dir = True
        if not self.dir.is_dir():
            raise UsageError(f"{self.dir} is not a directory: choose another --dir")
        if not self.made_dir and any(self.dir.iterdir()):
            raise self._taken()
        # An empty NAME in the root is what an `up` killed right after making it left: ours all the same.
        self.made_dir = self.made_dir or self.in_root
        os.chmod(self.dir, PRIVATE)
        try:
            with signals_deferred():  # a Ctrl-C lands after `claimed` is set, so discard() removes the marker
                fd = os.open(self.dir / OWNER, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
                self.claimed = True
        except FileExistsError:
            raise SandboxExistsError(f"{self.dir} was just claimed by another `upgrader sandbox up`: "
                                     "choose another --dir") from None
        with os.fdopen(fd, "w") as f:
            json.dump({"name": name, "made_dir": self.made_dir}, f)
        with open(self.dir / CREATING, "x") as f:
            f.write(str(os.getpid()))

    def _taken(self) -> UsageError:
        if self.in_root:
            return UsageError(f"{self.dir} exists and is no sandbox `upgrader sandbox up` made: remove it, or "
                              "choose another name")
        return UsageError(f"{self.dir} exists and is not empty: choose another --dir")

    def committed(self) -> None:
        """The sandbox's config.json is written: from here on it is a sandbox, not a creation."""
        (self.dir / CREATING).unlink()

    def discard(self) -> None:
        if self.claimed:
            if self.made_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            else:
                _empty(self.dir)
        elif self.made_dir:
            with contextlib.suppress(OSError):  # empty unless another `up` claimed it meanwhile: then it is theirs
                self.dir.rmdir()


def _empty(directory: Path) -> None:
    for entry in list(directory.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _why(path: Path, error: OSError) -> str:
    """Why ``path`` cannot be made: a file where a directory should be says so, else the system's reason."""
    for parent in (path, *path.parents):
        if parent.exists():
            return (error.strerror or str(error)) if parent.is_dir() else f"{parent} is not a directory"
    return error.strerror or str(error)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Run a step and its bookkeeping whole: SIGINT/SIGTERM arriving meanwhile take effect right after.

    Python runs signal handlers in the main thread between bytecodes, whichever thread the kernel
    delivered to (so blocking the signal in this thread would not do): the handlers are swapped for
    ones that only note the signal, and the noted signals are handled once the originals are back.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: noted.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s, handler in previous.items():
            if s not in noted:
                continue
            if callable(handler):
                handler(s, None)  # SIGINT's raises KeyboardInterrupt here
            elif handler == signal.SIG_DFL:
                signal.raise_signal(s)


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
