"""Where the ledger lives, how to connect to it, and keeping its schema at the migrations' head.

Guarantees:
- SQLite (the default, one operator): the file (0600, and so its -wal and -shm) and its directory
  (0700) are created on first use and migrated to head automatically; concurrent first uses are
  serialised by SQLite's write lock (every transaction but the read-only schema check is
  ``BEGIN IMMEDIATE``, and a migration re-reads the revision under that lock), so two processes
  never migrate at once.
- PostgreSQL (teams, fleets): never migrated implicitly, because other hosts may run an older
  upgrader; a schema that is not at head is a ``SchemaMismatchError`` saying what to do.
- An unusable database is a one-line ``DatabaseError`` (exit 2) with the password masked; one that
  stays busy past the busy timeout is a ``LedgerBusyError`` (exit 7; upgrader.ledger.busy).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import sessionmaker

from upgrader import __version__, errors
from upgrader.domain.redaction import redact_argument
from upgrader.ledger import busy
from upgrader.ledger.busy import DEFAULT_BUSY_TIMEOUT
from upgrader.ledger.failures import database_errors, masked
from upgrader.ledger.models import json_serializer
from upgrader.ledger.uow import SqlUnitOfWork
from upgrader.shipped import shipped_dir

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration's revision, so that opening an up-to-date ledger needs no alembic at all
# (start-up time); tests/integration/test_ledger_migrations.py checks it against alembic's head.
SCHEMA_HEAD = "0006"

MIGRATIONS_DIR = shipped_dir("migrations")
_PG_MIGRATION_LOCK = 0x75_70_67_72  # "upgr": pg_advisory_xact_lock key serialising `db upgrade`s
_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}

# libpq's `host=db user=ops password=...`: not something SQLAlchemy takes, and not a file name to create.
_CONNINFO = re.compile(r"^\s*(host|hostaddr|port|dbname|user|password|service)\s*=", re.IGNORECASE)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def resolve_url(cli_value: str | None, environ: Mapping[str, str]) -> str:
    """``--db``, else ``UPGRADER_DB``, else the per-user SQLite file (XDG data home)."""
    value = cli_value or environ.get("UPGRADER_DB") or _default_sqlite_path(environ)
    return _normalise(value).render_as_string(hide_password=False)


def _default_sqlite_path(environ: Mapping[str, str]) -> str:
    data_home = environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(data_home):  # the XDG spec says to ignore relative values
        home = environ.get("HOME") or str(Path.home())
        data_home = os.path.join(home, ".local", "share")
    return os.path.join(data_home, "upgrader", "ledger.db")


def _normalise(value: str) -> URL:
    if "://" not in value:  # a plain path names a SQLite file
        if _CONNINFO.match(value):
            raise errors.DatabaseError(
                f"not a database URL or file path: {redact_argument(value)} (a key=value connection string); "
                "use postgresql://USER@HOST/DB (the password in ~/.pgpass or PGPASSWORD)"
            )
        return URL.create("sqlite", database=str(Path(value).expanduser().resolve()))
    authority = value.split("://", 1)[1].split("/", 1)[0]
    if authority.count("@") > 1:  # the driver would take part of the password for the host, and print it
        raise errors.DatabaseError(f"the database URL {redact_argument(value)} has more than one '@' before its "
                                   "host: percent-encode an '@' in the user or password as %40")
    try:
        url = make_url(value)
    except (sa.exc.ArgumentError, ValueError) as e:
        raise errors.DatabaseError(f"not a database URL: {redact_argument(value)}") from e
    driver = _SCHEMES.get(url.drivername)
    if driver is None:
        raise errors.DatabaseError(
            f"unsupported database URL scheme {url.drivername!r}: use sqlite:///PATH or postgresql://..."
        )
    if driver == "sqlite" and url.database in (None, "", ":memory:"):
        raise errors.DatabaseError("the ledger must be a SQLite file, not an in-memory database")
    return url.set(drivername=driver)


class Ledger:
    """An open ledger: the engine and the factory of units of work. Close it to free connections."""

    def __init__(self, engine: Engine, *, clock: Clock = _utcnow) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    @property
    def url(self) -> URL:
        return self.engine.url

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._sessions, url=self.url, clock=self._clock)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger(url={masked(self.url)!r})"


def open_ledger(url: str, *, clock: Clock = _utcnow, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Ledger:
    """Connect and make sure the schema is at head (migrating a SQLite file, refusing otherwise).

    Every transaction waits up to ``busy_timeout`` seconds for another process's lock, then fails
    with ``LedgerBusyError`` (see upgrader.ledger.busy)."""
    parsed = _normalise(url)
    engine = _create_engine(parsed, busy_timeout=busy_timeout)
    try:
        with database_errors(parsed):
            heads = _heads(engine)
            if heads != (SCHEMA_HEAD,) and heads != (head(),):
                if parsed.get_backend_name() == "sqlite" and all(map(_is_known, heads)):
                    _run_alembic(parsed, lambda cfg: _command().upgrade(cfg, "head"), busy_timeout=busy_timeout)
                else:
                    raise _mismatch(parsed, heads)
    except BaseException:
        engine.dispose()
        raise
    return Ledger(engine, clock=clock)


def head() -> str:
    """The revision this upgrader's models correspond to."""
    from alembic.script import ScriptDirectory

    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None, "the migrations directory has no revisions"
    return rev


def current(url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> str | None:
    """The revision the database is at (None when it has never been migrated)."""
    parsed = _normalise(url)
    engine = _create_engine(parsed, busy_timeout=busy_timeout)
    try:
        with database_errors(parsed):
            heads = _heads(engine)
    finally:
        engine.dispose()
    return ",".join(heads) or None


def check(url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> bool:
    """True when the database is exactly at head (what `upgrader db check` reports)."""
    return current(url, busy_timeout=busy_timeout) == head()


def upgrade(url: str, revision: str = "head", *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
    parsed = _normalise(url)
    _run_alembic(parsed, lambda cfg: _command().upgrade(cfg, revision), busy_timeout=busy_timeout)


def downgrade(url: str, revision: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
    parsed = _normalise(url)
    _run_alembic(parsed, lambda cfg: _command().downgrade(cfg, revision), busy_timeout=busy_timeout)


def _mismatch(url: URL, heads: tuple[str, ...]) -> errors.SchemaMismatchError:
    found = ", ".join(heads) or "none (empty database)"
    if all(map(_is_known, heads)):
        return errors.SchemaMismatchError(
            f"the ledger at {masked(url)} is at schema revision {found} but this upgrader needs "
            f"{head()}: run `upgrader db upgrade`"
        )
    return errors.SchemaMismatchError(
        f"the ledger at {masked(url)} is at schema revision {found}, which this upgrader "
        f"({__version__}, schema {head()}) does not know: it was migrated by a newer "
        "upgrader; use that version or newer"
    )


def _is_known(revision: str) -> bool:
    # Exact match only: alembic would otherwise resolve a prefix ("0") to a known revision.
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        script = ScriptDirectory.from_config(_config()).get_revision(revision)
    except CommandError:
        return False
    return script is not None and script.revision == revision


def _command() -> Any:
    from alembic import command

    return command


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise errors.DatabaseError(f"the ledger migrations are missing: {MIGRATIONS_DIR}/env.py not found")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _heads(engine: Engine) -> tuple[str, ...]:
    """The revisions recorded in alembic_version, read directly: importing alembic costs start-up time.

    A read-only transaction (on SQLite, deferred: it never waits for a writer); a migration that
    follows takes the write lock and re-reads the revision inside it."""
    with engine.connect() as conn:
        conn.execution_options(**{_BEGIN: "DEFERRED"})
        if not sa.inspect(conn).has_table("alembic_version"):
            return ()
        return tuple(sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()))


def _run_alembic(url: URL, action: Callable[[Config], None], *, busy_timeout: float) -> None:
    """Run one alembic command in a single transaction that excludes every other migrator."""
    engine = _create_engine(url, busy_timeout=busy_timeout, foreign_keys=False)
    try:
        with database_errors(url), engine.begin() as conn:
            if url.get_backend_name() == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            action(_config(conn))
            if url.get_backend_name() == "sqlite":
                _check_foreign_keys(conn, url)
    finally:
        engine.dispose()


def _check_foreign_keys(conn: Connection, url: URL) -> None:
    # Migrations run with SQLite's FK enforcement off (a batch table rebuild would otherwise
    # cascade-delete children); this check restores the guarantee before the commit.
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise errors.DatabaseError(f"migration of {masked(url)} left dangling foreign keys: {broken[:3]}")


_BEGIN = "upgrader_sqlite_begin"  # execution option: how a SQLite transaction begins (default IMMEDIATE)


def _create_engine(url: URL, *, busy_timeout: float, foreign_keys: bool = True) -> Engine:
    where = masked(url)
    if url.get_backend_name() != "sqlite":
        engine = sa.create_engine(url, json_serializer=json_serializer,
                                  connect_args={"connect_timeout": 10, "application_name": "upgrader"})

        @event.listens_for(engine, "begin")
        def _on_pg_begin(conn: Connection) -> None:
            busy.postgres_lock_timeout(conn.connection.driver_connection, timeout=busy_timeout)

        return engine
    _make_private_file(url)
    slice_ms = round(min(busy.SQLITE_SLICE, busy_timeout) * 1000)
    engine = sa.create_engine(url, json_serializer=json_serializer, connect_args={"timeout": slice_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sa.PoolProxiedConnection, _record: object) -> None:
        dbapi_conn.isolation_level = None  # type: ignore[attr-defined]  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {slice_ms}")
        # WAL lets readers work while a run writes. Switching a fresh file to WAL needs an
        # exclusive lock for which SQLite does not call the busy handler, so concurrent first uses
        # retry it like a busy BEGIN.
        busy.retry_sqlite(lambda: cursor.execute("PRAGMA journal_mode = WAL"), timeout=busy_timeout, where=where)
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front: a deferred transaction that reads and then writes gets
        # SQLITE_BUSY at once (no busy wait) when another writer got in between. Reads that will
        # never write may say DEFERRED (execution option), and then never wait for a writer.
        mode = conn.get_execution_options().get(_BEGIN, "IMMEDIATE")
        busy.sqlite_begin(conn.connection.driver_connection, f"BEGIN {mode}", timeout=busy_timeout, where=where)

    return engine


def _make_private_file(url: URL) -> None:
    """The ledger file exists, readable by its owner only, before SQLite first opens it.

    SQLite creates a missing file with 0644 (less the umask), and its -wal and -shm with the mode
    of the database file: creating the file 0600 here (O_EXCL, so a racing first use simply finds
    it) makes all three private from the first write, whatever the directory or umask. A file we
    own that others may read (0644 from an older upgrader) is tightened to 0600 with its -wal and
    -shm; a group-only mode (0640, 0660) is a deliberate choice and is left alone.
    """
    path = Path(url.database or "").expanduser()
    parent = path.parent
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise errors.DatabaseError(f"cannot create the ledger directory {parent}: {e.strerror}") from e
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _tighten(path)
    except OSError:
        return  # SQLite reports it, with the same one-line error as before
    else:
        try:
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask took away
        finally:
            os.close(fd)


def _tighten(path: Path) -> None:
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            st = each.stat()
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o007:
                each.chmod(0o600)
        except OSError:
            continue  # absent (no -wal yet), or not ours to change
