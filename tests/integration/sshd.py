"""A real OpenSSH server for the tests: /usr/sbin/sshd on a free loopback port, throwaway keys.

The server has its own host key and accepts one throwaway user key for root (we run as root),
by key only. It logs to a file in its temp dir (LogLevel VERBOSE: one "Accepted publickey" line
per login, which is how the tests count connections) and is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.processes import stop

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


@dataclass
class SshServer:
    dir: Path
    port: int
    host_key: Path
    user_key: Path
    log: Path
    pid: int

    @property
    def host_key_line(self) -> str:
        """The server's known_hosts line."""
        kind, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def known_hosts(self, name: str = "known_hosts", *, key: str | None = None) -> Path:
        """A known_hosts file that trusts this server (or holds ``key``'s line for it instead)."""
        path = self.dir / name
        path.write_text(self.host_key_line if key is None else key)
        return path

    def logins(self) -> int:
        """How many logins the server has accepted so far (one per SSH connection)."""
        return self.log.read_text(errors="replace").count("Accepted publickey for root")


@contextlib.contextmanager
def sshd(tmp: Path) -> Iterator[SshServer]:
    """Start sshd -D on 127.0.0.1:a free port; stop it by its pid when the block ends."""
    tmp.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir (runtime, empty)
    host_key = keygen(tmp / "host_key", "upgrader-test-host")
    user_key = keygen(tmp / "user_key", "upgrader-test-user")
    (tmp / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
    port = free_port()
    log = tmp / "sshd.log"
    config = tmp / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {host_key}\nPidFile {tmp / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "LogLevel VERBOSE\nAllowTcpForwarding yes\nMaxSessions 50\nMaxStartups 200\n"
    )
    proc = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(log)], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "Server listening" not in (log.read_text(errors="replace") if log.exists() else ""):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {log.read_text() if log.exists() else proc.returncode}")
            time.sleep(0.02)
        yield SshServer(tmp, port, host_key, user_key, log, proc.pid)
    finally:
        stop(proc)
