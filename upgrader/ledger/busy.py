"""A busy ledger waits, then says so.

Another process may hold the ledger's write lock for a while (twenty `upgrader plan` runs writing
10,000-node plans to one SQLite file, a backup, a migration). Every transaction therefore waits
for it, for as long as the busy timeout (``--busy-timeout``, ``UPGRADER_BUSY_TIMEOUT``, default
:data:`DEFAULT_BUSY_TIMEOUT` seconds), and then fails with :class:`errors.LedgerBusyError`: one
line, exit 7, nothing written.

- SQLite: a write transaction starts with ``BEGIN IMMEDIATE``, so in WAL mode taking the write
  lock is the only moment it can be busy (a deferred transaction that reads and then writes would
  be refused outright when another writer got in between, with no busy wait). That BEGIN is
  retried with jittered exponential backoff (tenacity) until the deadline; each attempt lets
  SQLite's own busy handler poll for :data:`SQLITE_SLICE` seconds.
- PostgreSQL: locks are queued by the server, so each transaction sets ``lock_timeout`` to the
  busy timeout and waits in that queue. A lock timeout, a deadlock or a serialization failure is
  reported the same way (exit 7); the transaction is rolled back, so the command can simply be run
  again.

tenacity is imported only when the ledger is actually busy (start-up time).
"""

from __future__ import annotations

import time
from typing import Any

from upgrader import errors

DEFAULT_BUSY_TIMEOUT = 60.0  # seconds; --busy-timeout and UPGRADER_BUSY_TIMEOUT say otherwise
SQLITE_SLICE = 0.1  # seconds SQLite's busy handler polls within one attempt
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6  # primary result codes (extended codes keep them in the low byte)
# lock_not_available (lock_timeout), serialization_failure, deadlock_detected
_PG_BUSY = frozenset({"55P03", "40001", "40P01"})


def is_busy(exc: BaseException) -> bool:
    """Whether a driver error (raw or wrapped by SQLAlchemy) means "another transaction is in the way"."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    if getattr(orig, "sqlstate", None) in _PG_BUSY:
        return True
    text = str(orig)
    return type(orig).__name__ == "OperationalError" and ("database is locked" in text or "is busy" in text)


def busy_error(exc: BaseException | None, *, where: str, waited: float) -> errors.LedgerBusyError:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig or "").splitlines() if line.strip()]
    detail = lines[0] if lines else "another process holds its write lock"
    return errors.LedgerBusyError(
        f"ledger busy: {where}: {detail} (waited {waited:.1f} s); nothing was written: "
        "try again, or wait longer with --busy-timeout SECONDS"
    )


def sqlite_begin(dbapi_connection: Any, statement: str, *, timeout: float, where: str) -> None:
    """Run ``BEGIN ...`` on a raw sqlite3 connection, retrying while the database is locked."""
    cursor = dbapi_connection.cursor()
    try:
        _retry_while_busy(lambda: cursor.execute(statement), timeout=timeout, where=where)
    finally:
        cursor.close()


def retry_sqlite(action: Any, *, timeout: float, where: str) -> None:
    """Run ``action()`` (a statement on a raw sqlite3 cursor), retrying while the database is locked."""
    _retry_while_busy(action, timeout=timeout, where=where)


def postgres_lock_timeout(dbapi_connection: Any, *, timeout: float) -> None:
    """Bound every lock wait of the transaction that starts now (0 would mean "wait forever")."""
    milliseconds = max(1, round(timeout * 1000))
    dbapi_connection.execute(f"SET LOCAL lock_timeout = {milliseconds}")


def _retry_while_busy(action: Any, *, timeout: float, where: str) -> None:
    started = time.monotonic()
    try:
        action()
        return
    except Exception as e:
        if not is_busy(e):
            raise
    from tenacity import RetryError, Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

    retrying = Retrying(
        retry=retry_if_exception(is_busy),
        stop=stop_after_delay(max(0.0, timeout - (time.monotonic() - started))),
        wait=wait_random_exponential(multiplier=0.01, max=0.25),
    )
    try:
        for attempt in retrying:
            with attempt:
                action()
    except RetryError as e:
        last = e.last_attempt.exception()
        raise busy_error(last, where=where, waited=time.monotonic() - started) from last
