"""The ledger adapter under another process's locks, on real SQLite files and a real PostgreSQL.

The CLI side (exit 7, one line, nothing written) is in tests/cli/test_cli_busy.py; here: what the
adapter guarantees underneath. Opening a ledger only reads (so it never waits for a writer), a
unit of work gives up after the busy timeout it was given, and a PostgreSQL deadlock is "busy"
(exit 7, run it again), not "unusable database" (exit 2).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time

import psycopg
import pytest

from upgrader import errors
from upgrader.ledger import db


def _hold_sqlite(url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_opening_a_ledger_never_waits_for_a_writer(sqlite_url: str) -> None:
    db.upgrade(sqlite_url)
    writer = _hold_sqlite(sqlite_url)
    try:
        started = time.monotonic()
        assert db.current(sqlite_url) == db.head()
        with db.open_ledger(sqlite_url):
            pass
        assert time.monotonic() - started < 2
    finally:
        writer.rollback()
        writer.close()


def test_a_unit_of_work_waits_its_busy_timeout_then_gives_up(sqlite_url: str) -> None:
    db.upgrade(sqlite_url)
    writer = _hold_sqlite(sqlite_url)
    try:
        with db.open_ledger(sqlite_url, busy_timeout=0.8) as ledger:
            started = time.monotonic()
            with pytest.raises(errors.LedgerBusyError) as caught, ledger.unit_of_work() as uow:
                uow.repo.add_cluster(name="prod", kubeconfig="/k", context=None, transport=None, actor="a")
                uow.commit()
            waited = time.monotonic() - started
    finally:
        writer.rollback()
        writer.close()
    assert 0.8 <= waited < 2.5
    said = re.search(r"database is locked \(waited ([0-9.]+) s\)", caught.value.message)
    assert caught.value.exit_code == 7 and said is not None and 0.8 <= float(said.group(1)) <= waited + 0.05
    with db.open_ledger(sqlite_url) as ledger, ledger.unit_of_work() as uow:
        assert uow.repo.list_clusters() == []


@pytest.mark.postgres
def test_a_postgres_deadlock_is_busy_and_rolled_back(postgres_url: str) -> None:
    """This unit of work inserts a cluster, then waits for the events table another transaction
    holds; that one then waits for the cluster's name: a deadlock. PostgreSQL aborts the first of
    the two to check (this one: it has waited longest)."""
    db.upgrade(postgres_url)
    other = psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    other.execute("LOCK TABLE events IN EXCLUSIVE MODE")
    outcome: list[BaseException] = []

    def add_cluster() -> None:
        try:
            with db.open_ledger(postgres_url) as ledger, ledger.unit_of_work() as uow:
                uow.repo.add_cluster(name="prod", kubeconfig="/k", context=None, transport=None, actor="a")
                uow.repo.append_event(kind="cluster-added", actor="a", host="h", command_line="c", cluster="prod")
                uow.commit()
        except BaseException as e:
            outcome.append(e)

    worker = threading.Thread(target=add_cluster)
    worker.start()
    time.sleep(0.5)  # the unit of work is waiting for the events table by now
    other.execute("INSERT INTO clusters (name, kubeconfig, created_by, created_at, updated_at) "
                  "VALUES ('prod', '/other', 'b', now(), now())")
    worker.join(timeout=30)
    other.rollback()
    other.close()
    assert len(outcome) == 1 and isinstance(outcome[0], errors.LedgerBusyError), outcome
    assert outcome[0].exit_code == 7 and "deadlock detected" in outcome[0].message
    with db.open_ledger(postgres_url) as ledger, ledger.unit_of_work() as uow:
        assert uow.repo.list_clusters() == [] and uow.repo.list_events() == []
