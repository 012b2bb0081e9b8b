"""Real databases for integration tests: a SQLite file per test, and a throwaway PostgreSQL server.

The PostgreSQL server is started once per session from the distribution's binaries
(/usr/lib/postgresql/<major>/bin, installed by scripts/test.sh), listens on a free loopback port
with its unix socket in its own temporary directory, and gives every test a fresh database.
Missing binaries FAIL the tests that need them: a silently skipped backend hides regressions.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

PREFERRED_MAJOR = "15"


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
    pytest.fail(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH); "
        "run scripts/test.sh, which installs postgresql-15",
        pytrace=False,
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
        pytest.fail(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}", pytrace=False)


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = postgres_bindir()
    # Not under pytest's basetemp: that is 0700 root-owned, and the server runs as postgres.
    tmp = Path(tempfile.mkdtemp(prefix="upgrader-pg-"))
    datadir, sockets = tmp / "data", tmp / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
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
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with postgres_server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.url(name)
    with postgres_server.admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger' / 'ledger.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on both backends the ledger supports."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def etcd_installed() -> None:
    """Fail (never skip) when etcd is missing: scripts/test.sh installs it."""
    import shutil

    if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
        pytest.fail("etcd/etcdctl are not installed: run scripts/test.sh, which installs them")
