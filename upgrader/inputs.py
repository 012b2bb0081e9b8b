"""Reading files someone else controls, within bounds: an operator's inputs, a sandbox node's files.

:func:`read_regular` reads only a regular file, never more than a limit, and never hangs on a
FIFO; the sandbox reads its nodes' files (which a node command may have made anything) with it.

``--kubeconfig``, ``--state`` and ``--catalog`` name files that are read whole and parsed. A path
can name anything: ``/dev/zero`` (endless), a FIFO (a read that never returns), a directory, a
file of gigabytes. Each is refused with a one-line message (exit 2) before it is read: only a
regular file is read, and only up to the documented cap of its kind.

The caps (also in the README):

=============  ========  =================================================================
kind           cap       why
=============  ========  =================================================================
kubeconfig     16 MiB    a kubeconfig with hundreds of contexts and inline certificates
inventory      64 MiB    a 10,000-node inventory is about 1.1 MB (Kubernetes supports 5,000)
catalog        4 MiB     one version per line: every Kubernetes release ever is ~30 KB
=============  ========  =================================================================
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from upgrader.errors import UsageError

MiB = 1024 * 1024
CAPS: dict[str, int] = {"kubeconfig": 16 * MiB, "inventory": 64 * MiB, "catalog": 4 * MiB}


class NotRegularFileError(OSError):
    """The path names a FIFO, a device, a directory or a socket; ``mode`` says which."""

    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(f"{path}: not a regular file")
        self.mode = mode


class FileTooLargeError(OSError):
    """The file is larger than the reader's limit; ``size`` is what it had (at least)."""

    def __init__(self, path: Path, size: int) -> None:
        super().__init__(f"{path}: {size} bytes is too large")
        self.size = size


def read_regular(path: Path, *, limit: int, nofollow: bool = False) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. ``nofollow`` refuses a final symlink
    (ELOOP). Raises OSError: FileNotFoundError, NotRegularFileError, FileTooLargeError, or another."""
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of hanging; the regular-file
    # check then refuses it. O_NOCTTY: a terminal device never becomes our controlling tty.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        os.close(fd)  # before fdopen, which refuses a directory with an error of its own
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(path, info.st_mode)
        raise FileTooLargeError(path, info.st_size)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)  # a file growing while it is read is still bounded
    if len(data) > limit:
        raise FileTooLargeError(path, len(data))
    return data


def read_text(path: Path, *, kind: str, error: type[UsageError] = UsageError) -> str:
    """The file's text (UTF-8), or ``error`` with a one-line reason (not found, not a regular file,
    over the cap of ``kind``, unreadable, not UTF-8)."""
    data = _read_bounded(path, kind=kind, cap=CAPS[kind], error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{kind} {path}: not UTF-8 text (byte {e.start})") from e


def _read_bounded(path: Path, *, kind: str, cap: int, error: type[UsageError]) -> bytes:
    try:
        return read_regular(path, limit=cap)
    except FileNotFoundError as e:
        raise error(f"{kind} {path}: no such file") from e
    except NotRegularFileError as e:
        raise error(f"{kind} {path}: not a regular file ({_kind_of(e.mode)})") from e
    except FileTooLargeError as e:
        raise error(f"{kind} {path}: {_size(e.size)} is over the {_size(cap)} limit for a {kind}") from e
    except OSError as e:
        raise error(f"{kind} {path}: cannot read it ({e.strerror})") from e


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"
