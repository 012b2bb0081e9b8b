"""Turn driver and alembic failures into one-line ``DatabaseError``s at the ledger's boundary.

Callers above the ledger never see SQLAlchemy, psycopg or sqlite3 exceptions for an unusable
database (unreachable, unwritable, unknown revision): they see ``errors.DatabaseError`` (exit 2)
with a message that names the database with its password masked. A database that stayed busy
(another process's lock) is ``errors.LedgerBusyError`` (exit 7) instead: the input was fine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from upgrader import errors
from upgrader.domain.redaction import REDACTED, redact
from upgrader.ledger.busy import busy_error, is_busy


def masked(url: URL) -> str:
    """The URL to show: no password, neither the user's (``ops:***@``) nor one in the query
    (``?password=***``), which SQLAlchemy's own masking leaves in clear."""
    return redact(url.render_as_string(hide_password=True))


def describe(exc: BaseException, url: URL) -> str:
    """One line: where, and the driver's first line of explanation, never the password."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    detail = lines[0] if lines else type(orig).__name__
    for password in (url.password, url.query.get("password")):
        if password and isinstance(password, str):
            detail = detail.replace(password, REDACTED)
    return f"ledger database {masked(url)}: {redact(detail)}"


def translate(exc: BaseException, url: URL, *, waited: float) -> errors.UpgraderError:
    """The project's error for a driver failure: busy (exit 7) or unusable (exit 2)."""
    if is_busy(exc):
        return busy_error(exc, where=masked(url), waited=waited)
    return errors.DatabaseError(describe(exc, url))


@contextmanager
def database_errors(url: URL) -> Iterator[None]:
    """Translate unusable-database and busy failures; integrity violations stay (callers map those)."""
    started = time.monotonic()
    try:
        yield
    except sa_exc.IntegrityError:
        raise
    except (sa_exc.DBAPIError, OSError) as e:
        raise translate(e, url, waited=time.monotonic() - started) from e
    except Exception as e:
        if _is_alembic_error(e):
            raise errors.DatabaseError(describe(e, url)) from e
        raise


def _is_alembic_error(exc: Exception) -> bool:
    # alembic is imported only when migrating (start-up time); if it is not loaded, it raised nothing.
    util = sys.modules.get("alembic.util")
    return util is not None and isinstance(exc, util.CommandError)
