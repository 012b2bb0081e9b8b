"""The unit of work: one database transaction around a use case, committed only on request.

Leaving the ``with`` block without ``commit()`` (normally or by an exception) rolls back, so a
half-done use case never leaves half its rows behind. Database failures escaping the block are
translated here, at the boundary: ``errors.LedgerBusyError`` (exit 7) when another process's lock
was in the way for longer than the busy timeout, ``errors.DatabaseError`` (exit 2) otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from upgrader import errors
from upgrader.ledger.failures import database_errors, translate
from upgrader.ledger.repository import SqlRepository


class SqlUnitOfWork:
    repo: SqlRepository

    def __init__(self, sessions: sessionmaker[Session], *, url: URL, clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._url = url
        self._clock = clock
        self._session: Session | None = None
        self._started = 0.0

    def __enter__(self) -> SqlUnitOfWork:
        self._started = time.monotonic()
        self._session = self._sessions()
        self.repo = SqlRepository(self._session, clock=self._clock)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                with database_errors(self._url):
                    session.rollback()
            except errors.DatabaseError:
                if exc is None:  # otherwise the original failure is the one worth reporting
                    raise
            finally:
                session.close()
        if isinstance(exc, sa_exc.DBAPIError) and not isinstance(exc, sa_exc.IntegrityError):
            raise translate(exc, self._url, waited=time.monotonic() - self._started) from exc

    def commit(self) -> None:
        with database_errors(self._url):
            self._active().commit()

    def rollback(self) -> None:
        self._active().rollback()

    def _active(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is used outside its `with` block")
        return self._session
