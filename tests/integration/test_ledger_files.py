"""The SQLite ledger's files are its owner's alone: real files, in directories that exist or not.

The ledger holds every command line, inventory and plan; its -wal holds the latest writes and its
-shm the index of them. All three are created 0600 from the first write, whatever the umask, and
a world-readable ledger left by an older upgrader is tightened when it is next opened.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from upgrader.ledger import db


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _siblings(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("directory", ["exists", "missing"])
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o000], ids=lambda m: f"umask-{m:03o}")
def test_a_new_ledger_and_its_wal_and_shm_are_private_from_the_first_write(tmp_path, directory, mask):
    parent = tmp_path / "data"
    if directory == "exists":
        parent.mkdir(mode=0o755)
        parent.chmod(0o755)
    path = parent / "ledger.db"
    with _umask(mask), db.open_ledger(f"sqlite:///{path}") as ledger:
        with ledger.unit_of_work() as uow:
            uow.repo.add_cluster(name="prod", kubeconfig="/k", context=None, transport=None, actor="a")
            uow.commit()
        # The engine still holds its connection, so the -wal and -shm are there to look at.
        assert [(p.name, oct(_mode(p))) for p in _siblings(path)] == [
            ("ledger.db", "0o600"), ("ledger.db-wal", "0o600"), ("ledger.db-shm", "0o600")]
    assert _mode(parent) == (0o755 if directory == "exists" else 0o700)


def test_the_first_command_creates_the_ledger_private(tmp_path):
    path = tmp_path / "ledger.db"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
                          "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
                          "users: [{name: u, user: {}}]\n")
    argv = [sys.executable, "-m", "upgrader", "--db", str(path), "cluster", "add", "prod", "--kubeconfig",
            str(kubeconfig)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, umask=0o022)
    assert result.returncode == 0, result.stderr
    assert _mode(path) == 0o600


@contextmanager
def _old_ledger(path: Path, mode: int) -> Iterator[sqlite3.Connection]:
    """A ledger an older upgrader left: migrated, with a -wal and -shm still there (a reader holds
    them open), all three at ``mode``."""
    db.upgrade(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # keep the write in the -wal
        conn.execute("INSERT INTO lock_tokens (id, value) VALUES (1, 1)")
        for each in _siblings(path):
            each.chmod(mode)
        yield conn
    finally:
        conn.close()


@pytest.mark.parametrize(("left", "now"), [(0o644, 0o600), (0o604, 0o600), (0o660, 0o660), (0o640, 0o640)],
                         ids=lambda m: f"{m:04o}")
def test_a_world_readable_ledger_left_by_an_older_upgrader_is_tightened(tmp_path, left, now):
    """...and a group-only mode is a choice its owner made: it is left alone."""
    path = tmp_path / "ledger.db"
    with _old_ledger(path, left), db.open_ledger(f"sqlite:///{path}") as ledger:
        with ledger.unit_of_work() as uow:
            assert uow.repo.list_clusters() == []
        assert [oct(_mode(p)) for p in _siblings(path)] == [oct(now)] * 3
