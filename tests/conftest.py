"""Real databases for integration tests: a SQLite file per test, and a throwaway PostgreSQL server.

The PostgreSQL server (tests/pg_server.py, which the benchmarks use too) is started once per session
from the distribution's binaries (/usr/lib/postgresql/<major>/bin, installed by scripts/test.sh),
listens on a free loopback port with its unix socket in its own temporary directory, and gives
every test a fresh database.
Missing binaries FAIL the tests that need them: a silently skipped backend hides regressions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import settings

from tests.pg_server import PostgresServer, PostgresUnavailable, running_postgres

# Property tests run beside sandbox tests on a 2-core machine: a 200 ms per-example deadline there
# measures the machine's load, not the code (the rules' speed is measured in scripts/bench.py).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with ExitStack() as stack:
        try:
            server = stack.enter_context(running_postgres())
            problem = None
        except PostgresUnavailable as e:
            problem = str(e)
        if problem is not None:  # outside the except: the failure reads as one line, no chained traceback
            pytest.fail(problem, pytrace=False)
        yield server


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
