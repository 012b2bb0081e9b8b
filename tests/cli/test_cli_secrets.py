"""Secrets typed on the command line stay out of the ledger and out of every message.

Through the real entry point: commands run with a password in --db (PostgreSQL) or in a --reason
(SQLite), then the whole database (pg_dump; the SQLite file with its -wal and -shm, byte for byte)
is searched for it. Error messages for bad or unreachable URLs never quote it either.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli.conftest import inventory_doc, node
from tests.pg_server import PostgresServer, postgres_bindir

SECRET = "Zq7-hunter2-SECRET"
STANDARD = inventory_doc(node("cp-1", "v1.29.10", cp=True), node("w-1", "v1.29.10"))


def _with_password(url: str) -> str:
    user, at, rest = url.partition("@")
    assert at and "://" in user
    return f"{user}:{SECRET}@{rest}"


def _pg_dump(server: PostgresServer, url: str) -> str:
    database = url.rsplit("/", 1)[1]
    dump = subprocess.run(
        [str(postgres_bindir() / "pg_dump"), "-h", server.host, "-p", str(server.port), "-U", server.user,
         "--no-owner", database],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return dump.stdout


@pytest.mark.postgres
def test_a_postgres_password_in_db_is_nowhere_in_the_ledger(cli, kubeconfig, postgres_server, postgres_url):
    url = _with_password(postgres_url)
    state = cli.write("inv.json", STANDARD)
    assert cli("--db", url, "db", "upgrade").code == 0
    for argv in (
        ["cluster", "add", "prod", "--kubeconfig", str(kubeconfig)],
        ["cluster", "skip", "prod", "v1.30.14", "--reason", "kube-proxy regression"],
        ["plan", "prod", "--to", "v1.31", "--state", str(state)],
        ["cluster", "unskip", "prod", "v1.30.14"],
    ):
        r = cli("--db", url, *argv)
        assert r.code == 0, r.err
        assert SECRET not in r.out + r.err
    lines = _command_lines(postgres_url)
    assert len(lines) == 4
    assert all(f"postgres:***@127.0.0.1:{postgres_server.port}" in line for line in lines), lines
    dump = _pg_dump(postgres_server, postgres_url)
    assert "cluster-added" in dump and "plan-created" in dump  # the events are in the dump...
    assert SECRET not in dump  # ...and the password is not


def _command_lines(url: str) -> list[str]:
    """Every event's command line, read straight from the database."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [str(line) for line in conn.execute(sa.text("SELECT command_line FROM events")).scalars()]
    finally:
        engine.dispose()


def test_a_password_in_a_reason_is_nowhere_in_a_sqlite_ledger(cli, kubeconfig):
    reason = f"moved to https://ops:{SECRET}@vault.example/ledger, see token={SECRET}"
    state = cli.write("inv.json", STANDARD)
    for argv in (
        ["cluster", "add", "prod", "--kubeconfig", str(kubeconfig)],
        ["cluster", "skip", "prod", "v1.30.14", "--reason", reason],
        ["plan", "prod", "--to", "v1.31", "--state", str(state)],
    ):
        r = cli("--db", str(cli.db), *argv)
        assert r.code == 0, r.err
    shown = cli("--db", str(cli.db), "cluster", "show", "prod", "-o", "json").json()
    assert shown["skipped_versions"][0]["reason"] == "moved to https://ops:***@vault.example/ledger, see token=***"
    with sqlite3.connect(cli.db) as conn:
        lines = [row[0] for row in conn.execute("SELECT command_line FROM events")]
        dump = "\n".join(conn.iterdump())
    conn.close()
    assert len(lines) == 3 and "https://ops:***@vault.example" in lines[1]
    assert SECRET not in dump
    for path in Path(cli.db).parent.glob(Path(cli.db).name + "*"):  # the file, its -wal and -shm
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("db", "message"),
    [
        (f"postgresql://ops@127.0.0.1:1/ledger?password={SECRET}", "ledger database postgresql+psycopg://ops@"),
        (f"postgresql://ops@db:notaport/ledger?password={SECRET}", "not a database URL"),
        (f"host=127.0.0.1 user=ops password={SECRET} dbname=ledger", "key=value connection string"),
        # an '@' in the password: the driver would take its tail for the host name, and print it
        (f"postgresql://ops:x@{SECRET}@127.0.0.1:1/ledger", "percent-encode an '@'"),
    ],
)
def test_bad_database_urls_never_echo_the_password(cli, db, message):
    r = cli("--db", db, "cluster", "list")
    assert r.code == 2, (r.out, r.err)
    assert message in r.err
    assert SECRET not in r.err and len(r.err.strip().splitlines()) == 1
    assert not list(cli.tmp.glob("host=*"))  # a connection string is not a file name to create


def test_usage_errors_never_echo_a_secret(cli, kubeconfig):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    r = cli("plan", "prod", "--to", "v1.31", "--max-unavailable", f"token={SECRET}")
    assert r.code == 2 and "--max-unavailable" in r.err and "token=***" in r.err
    assert SECRET not in r.err
