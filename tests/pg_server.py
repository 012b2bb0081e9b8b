"""A throwaway PostgreSQL server from the distribution's binaries, for the tests and the benchmarks.

It runs from /usr/lib/postgresql/<major>/bin (installed by scripts/test.sh), as the postgres system
user when we are root (initdb and postgres refuse to run as root), listens on a free loopback port
with its unix socket in its own temporary directory, trusts local connections, and skips durability
(fsync off): it holds nothing worth keeping. It is stopped by its postmaster's pid, never by name.

Missing binaries or a server that does not start raise :class:`PostgresUnavailable`; tests/conftest.py
turns that into a failure (never a skip: a silently skipped backend hides regressions).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

PREFERRED_MAJOR = "15"


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing, or initdb / pg_ctl failed."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True)


def postgres_bindir() -> Path:
    """Prefer the distribution's PostgreSQL 15 (what scripts/test.sh installs), else the newest."""
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").is_file()]
    candidates.sort(
        key=lambda p: (p.parent.name == PREFERRED_MAJOR, int(p.parent.name) if p.parent.name.isdigit() else 0)
    )
    if candidates:
        return candidates[-1]
    on_path = shutil.which("pg_ctl")  # e.g. /usr/local/bin/pg_ctl, a symlink into such a bindir
    if on_path and (Path(on_path).resolve().parent / "initdb").is_file():
        return Path(on_path).resolve().parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH); "
        "run scripts/test.sh, which installs postgresql-15"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; drop to the postgres system user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str]) -> None:
    result = subprocess.run(_as_owner(argv), capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def _postmaster_pid(datadir: Path) -> int | None:
    try:
        return int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _stop(bindir: Path, datadir: Path) -> None:
    pid = _postmaster_pid(datadir)
    subprocess.run(
        _as_owner([str(bindir / "pg_ctl"), "stop", "-D", str(datadir), "-m", "fast", "-w", "-t", "30"]),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if pid is not None and not _wait_gone(pid, 10):
        os.kill(pid, 9)  # the postmaster we started; its backends exit with it
        _wait_gone(pid, 10)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh server for the life of the block, stopped (by its pid) and removed after it."""
    bindir = postgres_bindir()
    # Not under pytest's basetemp: that is 0700 root-owned, and the server runs as postgres.
    tmp = Path(tempfile.mkdtemp(prefix="upgrader-pg-"))
    datadir, sockets = tmp / "data", tmp / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    try:
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        try:
            _run(
                [
                    str(bindir / "pg_ctl"),
                    "start",
                    "-D",
                    str(datadir),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(tmp / "server.log"),
                    "-o",
                    options,
                ]
            )
            yield PostgresServer(host="127.0.0.1", port=port, user="postgres")
        finally:
            _stop(bindir, datadir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
