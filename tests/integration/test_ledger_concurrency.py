"""Real OS processes racing on one ledger: the database, not luck, decides who wins.

Each worker is a fresh interpreter (multiprocessing "spawn"); a barrier releases them together and
the winner holds its transaction open a moment so the others really overlap with it. Each worker
writes one line ("ok ...", "exists ...", "locked ...", "lost ...", or "error ...") to its own result
file. A race may give its workers different actions, each started a given delay after the barrier.
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


def _add_cluster(ledger: db.Ledger, index: int, data: dict[str, Any]) -> str:
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


def _acquire_lock(ledger: db.Ledger, index: int, data: dict[str, Any]) -> str:
    try:
        with ledger.unit_of_work() as uow:
            token = uow.repo.acquire_lock(cluster="prod", holder=f"worker-{index}", ttl_seconds=300, now=T0,
                                          take_over=data.get("take_over"))
            time.sleep(HOLD_SECONDS)
            uow.commit()
    except errors.RunLockedError as e:
        return f"locked {e.message}"
    return f"ok {token}"


def _take_over_and_look(ledger: db.Ledger, index: int, data: dict[str, Any]) -> str:
    """Take the dead holder's lease over, then read (in the same transaction) the step its run may be writing."""
    try:
        with ledger.unit_of_work() as uow:
            token = uow.repo.acquire_lock(cluster="prod", holder=f"worker-{index}", ttl_seconds=300, now=T0,
                                          take_over=data["take_over"])
            step = uow.repo.get_run(data["run"]).steps[0]
            time.sleep(data["hold"])
            uow.commit()
    except errors.RunLockedError as e:
        return f"locked {e.message}"
    return f"ok {token} {step.status}"


def _stale_write(ledger: db.Ledger, index: int, data: dict[str, Any]) -> str:
    """The old holder, not knowing it was declared dead, records its next step."""
    try:
        with ledger.unit_of_work() as uow:
            uow.repo.start_step(data["run"], 1, token=data["token"])
            time.sleep(data["hold"])
            uow.commit()
    except errors.LockLostError as e:
        return f"lost {e.message}"
    return "ok"


def _open_only(ledger: db.Ledger, index: int, data: dict[str, Any]) -> str:
    with ledger.unit_of_work() as uow:
        uow.repo.list_clusters()
    return "ok"


ACTIONS: dict[str, Callable[[db.Ledger, int, dict[str, Any]], str]] = {
    "add_cluster": _add_cluster,
    "acquire_lock": _acquire_lock,
    "take_over_and_look": _take_over_and_look,
    "stale_write": _stale_write,
    "open_only": _open_only,
}


def _worker(url: str, action: str, index: int, barrier: Any, out: str, race_open: bool, delay: float,
            data: dict[str, Any]) -> None:
    """Runs in a child process; never raises, so the parent sees every outcome as text."""
    try:
        if race_open:
            barrier.wait(timeout=60)
        ledger = db.open_ledger(url)
        try:
            if not race_open:
                barrier.wait(timeout=60)
            time.sleep(delay)
            result = ACTIONS[action](ledger, index, data)
        finally:
            ledger.close()
    except Exception as e:  # a crash or an untranslated driver error is a test failure
        result = f"error {type(e).__module__}.{type(e).__name__}: {e}"
    Path(out).write_text(result)


def _race(url: str, action: str | list[str], tmp_path: Path, *, workers: int, race_open: bool = False,
          delays: list[float] | None = None, data: dict[str, Any] | None = None) -> list[str]:
    """Each worker's result line; ``action`` and ``delays`` may differ per worker (lists by index)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    outs = [tmp_path / f"result-{i}.txt" for i in range(workers)]
    actions = action if isinstance(action, list) else [action] * workers
    delays = delays or [0.0] * workers
    procs = [
        ctx.Process(target=_worker, args=(url, actions[i], i, barrier, str(outs[i]), race_open, delays[i], data or {}))
        for i in range(workers)
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


def _dead_holders_run(url: str) -> dict[str, Any]:
    """A cluster whose lease (valid until T0 + 300 s) and run belong to a holder the racers take for dead."""
    with db.open_ledger(url) as ledger, ledger.unit_of_work() as uow:
        uow.repo.add_cluster(name="prod", kubeconfig="/k", context=None, transport=None, actor="alice")
        plan_id = uow.repo.save_plan(cluster="prod", observation=None, created_by="alice", target="v1.31.4",
                                     strategy={}, skipped_versions=[], source_fingerprint=None, document={},
                                     steps=[{"n": 1, "action": "drain", "node": "w-1", "reversibility": "reversible"}])
        token = uow.repo.acquire_lock(cluster="prod", holder="dead@ops-1:1", ttl_seconds=300, now=T0)
        run = uow.repo.create_run(plan_id=plan_id, started_by="alice", host="ops-1", command_line="upgrader apply",
                                  token=token, options={})
        uow.commit()
    # Held 1 s, the second racer 0.5 s behind: wide margins on a loaded machine for "the first has
    # checked the lease before the second starts, and has not committed yet".
    return {"take_over": int(token), "token": int(token), "run": int(run.id), "hold": 1.0}


def test_racing_takeovers_of_one_dead_holder_leave_exactly_one_holder(db_url: str, tmp_path: Path) -> None:
    """Every racer names the same dead token; once one has taken the lease, that token names nothing."""
    db.upgrade(db_url)
    data = _dead_holders_run(db_url)
    results = _race(db_url, "acquire_lock", tmp_path, workers=3, data=data)
    winners = [i for i, r in enumerate(results) if r.startswith("ok ")]
    assert len(winners) == 1, results
    assert all(r.startswith(f"locked cluster 'prod' is locked by worker-{winners[0]} ")
               for r in results if not r.startswith("ok ")), results
    with db.open_ledger(db_url) as ledger, ledger.unit_of_work() as uow:
        lease = uow.repo.get_lock("prod")
    assert lease is not None and (lease.holder, lease.fencing_token) == (
        f"worker-{winners[0]}", int(results[winners[0]].split()[1]))
    _integrity_ok(db_url)


@pytest.mark.parametrize("first", ["stale_write", "take_over_and_look"])
def test_a_stale_write_racing_a_takeover_lands_before_it_or_not_at_all(db_url: str, tmp_path: Path,
                                                                        first: str) -> None:
    """The old holder writes a step while another process takes its lease over. Whoever starts first,
    the two never overlap: the takeover, reading the step in its own transaction, sees the write
    committed (it waited for it: FOR SHARE on PostgreSQL, the write lock on SQLite), or the write is
    refused because the takeover committed first; never a write landing under a lost lease."""
    db.upgrade(db_url)
    data = _dead_holders_run(db_url)
    second = "take_over_and_look" if first == "stale_write" else "stale_write"
    writer, taker = _race(db_url, [first, second], tmp_path, workers=2, delays=[0.0, data["hold"] / 2], data=data)
    if first == "take_over_and_look":
        writer, taker = taker, writer
    with db.open_ledger(db_url) as ledger, ledger.unit_of_work() as uow:
        lease, step = uow.repo.get_lock("prod"), uow.repo.get_run(data["run"]).steps[0]
    assert lease is not None and lease.holder == ("worker-1" if first == "stale_write" else "worker-0")
    assert taker == f"ok {lease.fencing_token} {step.status}", (writer, taker)
    if first == "stale_write":
        assert (writer, step.status, step.attempts) == ("ok", "running", 1)
    else:
        assert writer.startswith(f"lost cannot record step 1 of run {data['run']} as running: the lease on "
                                 f"cluster 'prod' with token {data['token']} is no longer held; it is now held by "
                                 f"worker-0 (token {lease.fencing_token})"), writer
        assert (step.status, step.attempts) == ("pending", 0)
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
