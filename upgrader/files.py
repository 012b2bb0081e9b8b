"""Writing files so that no reader, and no crash, ever sees half of one.

Used by the node transports, the sandbox's state files and anything else that replaces a file
other processes read. (Reading files someone else controls: :mod:`upgrader.inputs`.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

