"""The outside programs upgrader runs, looked for before anything starts.

A command that needs etcd, etcdctl (and, as later commands arrive, ssh or PostgreSQL's tools)
calls :func:`require` first, so a machine without them gets one line naming the program and the
package that provides it, at once and with nothing half-started, instead of a supervisor that
retries a missing binary until a timeout.
"""

from __future__ import annotations

import shutil

from upgrader.errors import MissingProgramError

# Where each program comes from on the Debian machines upgrader is tested on.
PACKAGES = {
    "etcd": "Debian's etcd-server",
    "etcdctl": "Debian's etcd-client",
    "kubectl": "kubectl from the Kubernetes apt repository",
    "ssh": "Debian's openssh-client",
}


def require(*programs: str) -> dict[str, str]:
    """The absolute path of each program on PATH; MissingProgramError (exit 2) naming every missing one."""
    found = {p: shutil.which(p) for p in programs}
    missing = [p for p, path in found.items() if path is None]
    if missing:
        raise MissingProgramError("; ".join(
            f"{p} not found on PATH: install {PACKAGES.get(p, 'it')}, or run scripts/setup.sh" for p in missing))
    return {p: path for p, path in found.items() if path is not None}
