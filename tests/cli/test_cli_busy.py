"""A busy ledger through the real entry point: commands wait for another process's lock, then exit 7.

Another connection (a backup, another upgrader) holds the ledger's write lock for real: SQLite's
``BEGIN IMMEDIATE`` on the same file, PostgreSQL's ``LOCK TABLE``. Released within the wait, the
command succeeds; held past ``--busy-timeout``, it exits 7 with one line saying so and nothing of
it is in the ledger.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cli.conftest import inventory_doc, node

STANDARD = inventory_doc(node("cp-1", "v1.29.10", cp=True), node("cp-2", "v1.29.10", cp=True),
                         *(node(f"w-{i}", "v1.29.10") for i in range(1, 200)))


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        count = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    conn.close()
    return count


@contextmanager
def _held(conn: Any, *, release_after: float | None) -> Iterator[None]:
    """Keep ``conn``'s open transaction (and its locks) until the block ends, or ``release_after`` seconds."""
    timer = threading.Timer(release_after, conn.rollback) if release_after is not None else None
    if timer is not None:
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.join()
        conn.rollback()
        conn.close()


@contextmanager
def _sqlite_write_lock(db: Path, *, release_after: float | None = None) -> Iterator[None]:
    """Another writer on the ledger file, until the block ends (or ``release_after`` seconds)."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    with _held(conn, release_after=release_after):
        yield


@pytest.fixture
def prod(cli, kubeconfig):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    return cli


def _assert_busy(r, waited: str) -> None:
    assert r.code == 7, (r.out, r.err)
    assert r.err.startswith("error: ledger busy: ") and f"(waited {waited}" in r.err, r.err
    assert "nothing was written" in r.err and "--busy-timeout" in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_a_lock_released_within_the_wait_lets_the_command_succeed(prod):
    state = prod.write("inv.json", STANDARD)
    started = time.monotonic()
    with _sqlite_write_lock(prod.db, release_after=1.5):
        r = prod("--busy-timeout", "20", "plan", "prod", "--to", "v1.31", "--state", str(state))
    assert r.code == 0, r.err
    assert time.monotonic() - started >= 1.5  # it waited for the lock, it did not slip past it
    assert _count(prod.db, "plans") == 1


@pytest.mark.parametrize(
    ("argv", "timeout"),
    [
        (["--busy-timeout", "1", "plan", "prod", "--to", "v1.31", "--state", "{state}"], {}),
        (["plan", "prod", "--to", "v1.31", "--state", "{state}"], {"UPGRADER_BUSY_TIMEOUT": "1"}),
        (["--busy-timeout", "1", "cluster", "skip", "prod", "v1.30.14", "--reason", "regression"], {}),
        (["--busy-timeout", "1", "cluster", "add", "dev", "--kubeconfig", "{kubeconfig}"], {}),
    ],
    ids=["plan", "plan-env", "skip", "add"],
)
def test_a_lock_held_past_the_busy_timeout_exits_7_and_writes_nothing(prod, kubeconfig, argv, timeout):
    state = prod.write("inv.json", STANDARD)
    argv = [a.format(state=state, kubeconfig=kubeconfig) for a in argv]
    before = {t: _count(prod.db, t) for t in ("clusters", "skipped_versions", "observations", "plans", "events")}
    started = time.monotonic()
    with _sqlite_write_lock(prod.db):
        r = prod(*argv, env=timeout)
    _assert_busy(r, "1.")
    assert time.monotonic() - started < 8  # it gave up when told, not after SQLite's old 10 s
    assert {t: _count(prod.db, t) for t in before} == before


def test_ten_concurrent_plans_behind_a_long_writer_all_succeed(prod):
    """Ten `upgrader plan` processes at once, on one SQLite file that another writer (a backup,
    say) holds for longer than SQLite's usual 10 s timeout: every one waits its turn, none is lost."""
    fleet = inventory_doc(node("cp-1", "v1.29.10", cp=True), *(node(f"w-{i}", "v1.29.10") for i in range(1000)))
    state = prod.write("fleet.json", fleet)
    argv = [sys.executable, "-m", "upgrader", "plan", "prod", "--to", "v1.31", "--state", str(state), "-o", "json"]
    outs = [prod.tmp / f"plan-{i}.json" for i in range(10)]
    errs = [prod.tmp / f"plan-{i}.err" for i in range(10)]
    with _sqlite_write_lock(prod.db):
        procs = []
        for out, err in zip(outs, errs, strict=True):
            with out.open("w") as stdout, err.open("w") as stderr:
                procs.append(subprocess.Popen(argv, env=prod.env, stdout=stdout, stderr=stderr))
        _until_all_have_opened(procs, prod.db)
        time.sleep(11)  # from the moment the last one could start waiting
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0] * 10, [err.read_text() for err in errs]
    import json

    documents = [json.loads(out.read_text()) for out in outs]
    assert sorted(d["id"] for d in documents) == list(range(1, 11))
    steps = len(documents[0]["steps"])
    assert _count(prod.db, "plans") == 10 and _count(prod.db, "plan_steps") == 10 * steps
    assert _count(prod.db, "observations") == 10 and _count(prod.db, "events") == 11
    with sqlite3.connect(prod.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def _until_all_have_opened(procs: list[subprocess.Popen[bytes]], db: Path) -> None:
    """Until every process has the ledger file open (Linux /proc): from then on, it is waiting."""
    deadline = time.monotonic() + 60
    waiting: set[int] = set()
    while len(waiting) < len(procs):
        assert time.monotonic() < deadline, "the plans never opened the ledger"
        for p in procs:
            fds = Path(f"/proc/{p.pid}/fd")
            try:
                if any(Path(os.readlink(fd)) == db for fd in fds.iterdir()):
                    waiting.add(p.pid)
            except OSError:  # a descriptor closed while we looked
                continue
        time.sleep(0.05)


# PostgreSQL: the server queues lock waits; lock_timeout bounds them.


@contextmanager
def _postgres_table_lock(url: str, table: str, *, release_after: float | None = None) -> Iterator[None]:
    """Another transaction holding an EXCLUSIVE lock on ``table`` (reads go on, writes wait)."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    conn = psycopg.connect(conninfo)
    conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
    with _held(conn, release_after=release_after):
        yield


@pytest.fixture
def pg(cli, kubeconfig, postgres_url):
    assert cli("--db", postgres_url, "db", "upgrade").code == 0
    assert cli("--db", postgres_url, "cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    return postgres_url


def _pg_count(url: str, table: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.mark.postgres
def test_postgres_lock_timeout_is_busy_too_and_rolls_the_write_back(cli, kubeconfig, pg):
    """The plan is computed and written, then its audit event waits for the locked table: the whole
    transaction goes, observation, plan and steps with it."""
    state = cli.write("inv.json", STANDARD)
    before = {t: _pg_count(pg, t) for t in ("clusters", "observations", "plans", "plan_steps", "events")}
    with _postgres_table_lock(pg, "events", release_after=12):
        r = cli("--db", pg, "--busy-timeout", "1", "plan", "prod", "--to", "v1.31", "--state", str(state))
        _assert_busy(r, "1.")
        assert "lock timeout" in r.err
        r = cli("--db", pg, "--busy-timeout", "1", "cluster", "add", "dev", "--kubeconfig", str(kubeconfig))
        _assert_busy(r, "1.")
    assert {t: _pg_count(pg, t) for t in before} == before


@pytest.mark.postgres
def test_postgres_lock_released_within_the_wait_lets_the_command_succeed(cli, kubeconfig, pg):
    with _postgres_table_lock(pg, "events", release_after=1.5):
        r = cli("--db", pg, "--busy-timeout", "20", "cluster", "add", "dev", "--kubeconfig", str(kubeconfig))
    assert r.code == 0, r.err
    assert _pg_count(pg, "clusters") == 2
