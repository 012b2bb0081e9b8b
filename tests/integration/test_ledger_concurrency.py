"""Real OS processes racing on one ledger: the database, not luck, decides who wins.

Each worker is a fresh interpreter (multiprocessing "spawn"); a barrier releases them together and
the winner holds its transaction open a moment so the others really overlap with it. Each worker
writes one line ("ok ...", "exists ...", "locked ...", or "error ...") to its own result file.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from upgrader import errors
from upgrader.ledger import db

HOLD_SECONDS = 0.3
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _add_cluster(ledger: db.Ledger, index: int) -> str:
    try:
        with ledger.unit_of_work() as uow:
            uow.repo.add_cluster(
                name="prod", kubeconfig=f"/k/{index}", context=None, transport=None, actor=f"worker-{index}"
            )
            time.sleep(HOLD_SECONDS)
            uow.commit()
    except errors.ClusterExistsError as e:
        return f"exists {e.message}"
    return "ok"


def _acquire_lock(ledger: db.Ledger, index: int) -> str:
    try:
        with ledger.unit_of_work() as uow:
            token = uow.repo.acquire_lock(cluster="prod", holder=f"worker-{index}", ttl_seconds=300, now=T0)
            time.sleep(HOLD_SECONDS)
            uow.commit()
    except errors.RunLockedError as e:
        return f"locked {e.message}"
    return f"ok {token}"


def _open_only(ledger: db.Ledger, index: int) -> str:
    with ledger.unit_of_work() as uow:
        uow.repo.list_clusters()
    return "ok"


ACTIONS: dict[str, Callable[[db.Ledger, int], str]] = {
    "add_cluster": _add_cluster,
    "acquire_lock": _acquire_lock,
    "open_only": _open_only,
}


def _worker(url: str, action: str, index: int, barrier: Any, out: str, race_open: bool) -> None:
    """Runs in a child process; never raises, so the parent sees every outcome as text."""
    try:
        if race_open:
            barrier.wait(timeout=60)
        ledger = db.open_ledger(url)
        try:
            if not race_open:
                barrier.wait(timeout=60)
            result = ACTIONS[action](ledger, index)
        finally:
            ledger.close()
    except Exception as e:  # a crash or an untranslated driver error is a test failure
        result = f"error {type(e).__module__}.{type(e).__name__}: {e}"
    Path(out).write_text(result)


def _race(url: str, action: str, tmp_path: Path, *, workers: int, race_open: bool = False) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    outs = [tmp_path / f"result-{i}.txt" for i in range(workers)]
    procs = [
        ctx.Process(target=_worker, args=(url, action, i, barrier, str(outs[i]), race_open)) for i in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in procs] == [0] * workers
    return [out.read_text() for out in outs]


def _sqlite_path(url: str) -> str:
    return sa.make_url(url).database or ""


def _integrity_ok(url: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(_sqlite_path(url)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.close()


def _count(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_racing_cluster_adds_leave_exactly_one(db_url: str, tmp_path: Path) -> None:
    db.upgrade(db_url)
    results = _race(db_url, "add_cluster", tmp_path, workers=2)
    assert sorted(r.split()[0] for r in results) == ["exists", "ok"], results
    assert any("cluster 'prod' already exists" in r for r in results)
    assert _count(db_url, "SELECT count(*) FROM clusters WHERE name = 'prod'") == 1
    _integrity_ok(db_url)


def test_racing_lock_takers_leave_exactly_one_holder(db_url: str, tmp_path: Path) -> None:
    db.upgrade(db_url)
    results = _race(db_url, "acquire_lock", tmp_path, workers=4)
    winners = [i for i, r in enumerate(results) if r.startswith("ok ")]
    assert len(winners) == 1, results
    losers = [r for r in results if not r.startswith("ok ")]
    assert all(r.startswith(f"locked cluster 'prod' is locked by worker-{winners[0]} ") for r in losers), results
    with db.open_ledger(db_url) as ledger, ledger.unit_of_work() as uow:
        lease = uow.repo.get_lock("prod")
    assert lease is not None and lease.holder == f"worker-{winners[0]}"
    assert lease.fencing_token == int(results[winners[0]].split()[1])
    _integrity_ok(db_url)


def test_first_use_of_a_fresh_sqlite_file_by_many_processes(sqlite_url: str, tmp_path: Path) -> None:
    results = _race(sqlite_url, "open_only", tmp_path, workers=4, race_open=True)
    assert results == ["ok"] * 4
    assert db.current(sqlite_url) == db.head()
    _integrity_ok(sqlite_url)


@pytest.mark.postgres
def test_concurrent_db_upgrades_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=db.upgrade, args=(postgres_url,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert db.current(postgres_url) == db.head()
