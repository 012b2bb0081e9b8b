"""The migrations build exactly the models' schema, both ways, on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from upgrader import errors
from upgrader.ledger import busy, db
from upgrader.ledger.models import Base


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _schema_diff(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _stamp(url: str, revision: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :rev"), {"rev": revision})
    finally:
        engine.dispose()


def test_head_is_the_cluster_playbooks_revision() -> None:
    assert db.head() == "0006"


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    assert db.current(db_url) is None
    db.upgrade(db_url)
    assert db.current(db_url) == "0006"
    assert db.check(db_url)
    assert set(Base.metadata.tables) | {"alembic_version"} == _tables(db_url)

    db.downgrade(db_url, "base")
    assert db.current(db_url) is None
    assert not db.check(db_url)
    assert _tables(db_url) <= {"alembic_version"}

    db.upgrade(db_url)
    assert db.current(db_url) == "0006"


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    db.upgrade(db_url)
    assert _schema_diff(db_url) == []


def test_snapshots_revision_keeps_rows_and_goes_back(db_url: str) -> None:
    """0001 -> 0002 on a ledger holding a snapshot row: the row survives with the new defaults;
    and back to 0001 and up again leaves the schema equal to the models."""
    db.upgrade(db_url, "0001")
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO clusters (name, kubeconfig, created_by, created_at, updated_at) "
                "VALUES ('prod', '/k', 'a', '2026-12-01 00:00:00', '2026-12-01 00:00:00')"))
            conn.execute(sa.text(
                "INSERT INTO snapshots (cluster_id, created_at, files, etcd_status, source_member, versions, "
                "artefacts, known_good, pinned) SELECT id, '2026-12-01 00:00:00', '[]', '{}', 'cp-1', '{}', "
                "'[]', false, false FROM clusters"))
        db.upgrade(db_url)
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT status, external, created_by, size FROM snapshots")).one()
        assert (row.status, bool(row.external), row.created_by, row.size) == ("complete", False, "", 0)
        db.downgrade(db_url, "0001")
        db.upgrade(db_url)
        assert _schema_diff(db_url) == []
    finally:
        engine.dispose()


def test_run_options_revision_keeps_runs_and_their_steps_both_ways(db_url: str) -> None:
    """0002 -> 0003 on a ledger holding a run with a step: the run gets ``options = {}`` and no outcome;
    back to 0002 (SQLite rebuilds ``runs``) its steps are still there, and up again matches the models."""
    db.upgrade(db_url, "0002")
    engine = sa.create_engine(db_url)
    at = "'2026-12-01 00:00:00'"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                f"INSERT INTO clusters (name, kubeconfig, created_by, created_at, updated_at) "
                f"VALUES ('prod', '/k', 'a', {at}, {at})"))
            conn.execute(sa.text(
                f"INSERT INTO plans (cluster_id, created_at, created_by, target, strategy, skipped_versions, "
                f"document) SELECT id, {at}, 'a', 'v1.31.0', '{{}}', '[]', '{{}}' FROM clusters"))
            conn.execute(sa.text(
                f"INSERT INTO runs (plan_id, cluster_id, status, started_by, host, command_line, fencing_token, "
                f"created_at) SELECT plans.id, plans.cluster_id, 'interrupted', 'a', 'h', 'upgrader apply 1', 7, "
                f"{at} FROM plans"))
            conn.execute(sa.text(
                "INSERT INTO run_steps (run_id, n, action, status, attempts) SELECT id, 1, 'drain', 'pending', 0 "
                "FROM runs"))
        db.upgrade(db_url)
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT options, outcome, fencing_token FROM runs")).one()
        options = row.options if isinstance(row.options, dict) else json.loads(row.options)
        assert (options, row.outcome, row.fencing_token) == ({}, None, 7)
        db.downgrade(db_url, "0002")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM run_steps")).scalar_one() == 1
            assert "options" not in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
        db.upgrade(db_url)
        assert _schema_diff(db_url) == []
    finally:
        engine.dispose()


def test_catalog_releases_revision_goes_up_and_back_keeping_the_rest(db_url: str) -> None:
    """0004 -> 0005 adds the release listing's table; back to 0004 drops it and nothing else; up again
    matches the models."""
    db.upgrade(db_url, "0004")
    engine = sa.create_engine(db_url)
    at = "'2026-12-01 00:00:00'"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                f"INSERT INTO clusters (name, kubeconfig, created_by, created_at, updated_at) "
                f"VALUES ('prod', '/k', 'a', {at}, {at})"))
        db.upgrade(db_url, "0005")
        with engine.begin() as conn:
            conn.execute(sa.text(
                f"INSERT INTO catalog_releases (version, minor, released_at, source, fetched_at) "
                f"VALUES ('v1.38.0', 'v1.38', NULL, 'https://dl.k8s.io/release', {at})"))
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("catalog_releases")}
        assert "ix_catalog_releases_minor" in indexes
        db.downgrade(db_url, "0004")
        assert "catalog_releases" not in _tables(db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM clusters")).scalar_one() == "prod"
        db.upgrade(db_url)
        assert _schema_diff(db_url) == []
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM catalog_releases")).scalar_one() == 0
    finally:
        engine.dispose()


def test_cluster_playbooks_revision_keeps_clusters_and_goes_back(db_url: str) -> None:
    """0005 -> 0006 adds clusters.playbooks_dir (NULL: the shipped playbooks) keeping every cluster; back to
    0005 drops the column and nothing else; up again matches the models."""
    db.upgrade(db_url, "0005")
    engine = sa.create_engine(db_url)
    at = "'2026-12-01 00:00:00'"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                f"INSERT INTO clusters (name, kubeconfig, created_by, created_at, updated_at) "
                f"VALUES ('prod', '/k', 'a', {at}, {at})"))
        db.upgrade(db_url, "0006")
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT playbooks_dir FROM clusters")).scalar_one() is None
            conn.execute(sa.text("UPDATE clusters SET playbooks_dir = '/srv/playbooks'"))
        db.downgrade(db_url, "0005")
        with engine.connect() as conn:
            assert "playbooks_dir" not in {c["name"] for c in sa.inspect(conn).get_columns("clusters")}
            assert conn.execute(sa.text("SELECT name FROM clusters")).scalar_one() == "prod"
        db.upgrade(db_url)
        assert _schema_diff(db_url) == []
    finally:
        engine.dispose()


def test_sqlite_is_migrated_on_first_use(sqlite_url: str) -> None:
    with db.open_ledger(sqlite_url) as ledger:
        assert db.current(sqlite_url) == db.head()
        directory = Path(sa.make_url(sqlite_url).database or "").parent
        assert directory.stat().st_mode & 0o777 == 0o700
        with ledger.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            # SQLite's own busy handler polls for a slice; the begin of each transaction retries
            # such slices for as long as the busy timeout (upgrader.ledger.busy).
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == round(busy.SQLITE_SLICE * 1000)


def test_sqlite_behind_is_migrated_forward(sqlite_url: str) -> None:
    db.upgrade(sqlite_url)
    db.downgrade(sqlite_url, "base")
    with db.open_ledger(sqlite_url):
        assert db.current(sqlite_url) == db.head()


@pytest.mark.postgres
def test_postgres_is_never_migrated_implicitly(postgres_url: str) -> None:
    with pytest.raises(errors.SchemaMismatchError, match=r"run `upgrader db upgrade`") as caught:
        db.open_ledger(postgres_url)
    assert "none (empty database)" in caught.value.message
    assert db.current(postgres_url) is None


@pytest.mark.postgres
def test_postgres_behind_names_both_revisions(postgres_url: str) -> None:
    db.upgrade(postgres_url)
    db.downgrade(postgres_url, "base")
    with pytest.raises(errors.SchemaMismatchError) as caught:
        db.open_ledger(postgres_url)
    assert "needs 0006" in caught.value.message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("revision", ["9999_from_the_future", "0"])  # "0" is a prefix of 0001
def test_schema_ahead_is_refused_on_both_backends(db_url: str, revision: str) -> None:
    db.upgrade(db_url)
    _stamp(db_url, revision)
    with pytest.raises(errors.SchemaMismatchError) as caught:
        db.open_ledger(db_url)
    message = caught.value.message
    assert f"revision {revision}," in message
    assert "newer upgrader" in message
    assert "\n" not in message


def test_ledger_repr_masks_the_password() -> None:
    url = "postgresql://alice:s3cret@db.example:5432/ledger"
    resolved = db.resolve_url(url, {})
    engine = sa.create_engine(resolved)
    try:
        ledger = db.Ledger(engine)
        assert "s3cret" not in repr(ledger)
        assert "s3cret" not in str(ledger.url)
    finally:
        engine.dispose()


def test_unreachable_postgres_is_a_one_line_database_error() -> None:
    with pytest.raises(errors.DatabaseError) as caught:
        db.open_ledger("postgresql://alice:s3cret@127.0.0.1:1/ledger")
    message = caught.value.message
    assert "\n" not in message
    assert "s3cret" not in message
    assert "127.0.0.1" in message
    assert caught.value.exit_code == 2


def test_unwritable_sqlite_location_is_a_database_error() -> None:
    with pytest.raises(errors.DatabaseError, match="ledger"):
        db.open_ledger("sqlite:////proc/upgrader/ledger.db")


def test_schema_head_constant_matches_the_migrations():
    assert db.head() == db.SCHEMA_HEAD
