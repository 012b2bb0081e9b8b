"""Cluster leases with fencing tokens: at most one run changes a cluster at a time.

A lease is a row in ``cluster_locks`` valid until ``expires_at``; the holder renews it while it
works. Every acquisition is stamped with a fencing token from the ``lock_tokens`` counter, strictly
increasing across all clusters, so a run whose lease silently expired can tell (``renew`` fails)
and writes stamped with its stale token can be refused.

Correctness under concurrency comes from single atomic statements, not read-then-write:
- the token is an upsert on one counter row (its row lock serialises concurrent takers on
  PostgreSQL; SQLite transactions are already serialised by ``BEGIN IMMEDIATE``);
- the lease is ``INSERT .. ON CONFLICT DO UPDATE .. WHERE <expired, ours, or the dead holder's named
  by take_over> RETURNING``: it either takes the row or returns nothing, with no window in between;
- renew and release are conditional on the token, with a row-count check.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upgrader import errors
from upgrader.domain.records import LockRecord
from upgrader.domain.runs import FencingToken, RunId
from upgrader.ledger.models import ClusterLock, LockToken

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite


def upsert(session: Session, model: type[Any]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ON CONFLICT, for the session's backend.

    The dialect modules are imported here, not at the top: every command that opens the ledger would
    otherwise pay ~30 ms for the PostgreSQL dialect on SQLite and the other way round.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(model)
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(model)
    raise errors.DatabaseError(f"the ledger does not support {dialect} databases")


def acquire(
    session: Session,
    *,
    cluster: str,
    holder: str,
    ttl_seconds: float,
    now: datetime,
    run_id: int | None,
    take_over: int | None = None,
) -> FencingToken:
    """Take the lease when it is free, expired, already ours, or held under ``take_over`` (the token of
    a holder known dead: its lease is taken before it expires; a newer holder's is not)."""
    takeable = [ClusterLock.expires_at <= now, ClusterLock.holder == holder]
    if take_over is not None:
        takeable.append(ClusterLock.fencing_token == take_over)
    token = _next_token(session)
    ins = upsert(session, ClusterLock).values(
        cluster_name=cluster,
        holder=holder,
        run_id=run_id,
        fencing_token=token,
        acquired_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    stmt = ins.on_conflict_do_update(
        index_elements=[ClusterLock.cluster_name],
        set_={
            name: getattr(ins.excluded, name)
            for name in ("holder", "run_id", "fencing_token", "acquired_at", "expires_at")
        },
        where=sa.or_(*takeable),
    ).returning(ClusterLock.fencing_token)
    taken = session.execute(stmt).scalar_one_or_none()
    session.expire_all()
    if taken is None:
        raise _locked(session, cluster)
    return FencingToken(taken)


def renew(session: Session, *, cluster: str, token: int, ttl_seconds: float, now: datetime) -> None:
    """Extend a lease we still hold; an expired lease nobody took over is still ours."""
    result = session.execute(
        sa.update(ClusterLock)
        .where(ClusterLock.cluster_name == cluster, ClusterLock.fencing_token == token)
        .values(expires_at=now + timedelta(seconds=ttl_seconds))
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        holder = get(session, cluster)
        now_held = f"; it is now held by {holder.holder} (token {holder.fencing_token})" if holder else ""
        raise errors.LockLostError(f"the lease on cluster {cluster!r} with token {token} is no longer held{now_held}")


def release(session: Session, *, cluster: str, token: int) -> bool:
    """Give the lease up; a no-op (False) when it was already taken over or released."""
    result = session.execute(
        sa.delete(ClusterLock)
        .where(ClusterLock.cluster_name == cluster, ClusterLock.fencing_token == token)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return cast(sa.CursorResult[Any], result).rowcount == 1


def get(session: Session, cluster: str) -> LockRecord | None:
    row = session.get(ClusterLock, cluster, populate_existing=True)
    if row is None:
        return None
    return LockRecord(
        cluster=row.cluster_name,
        holder=row.holder,
        run_id=RunId(row.run_id) if row.run_id is not None else None,
        fencing_token=FencingToken(row.fencing_token),
        acquired_at=row.acquired_at,
        expires_at=row.expires_at,
    )


def _next_token(session: Session) -> int:
    ins = upsert(session, LockToken).values(id=1, value=1)
    stmt = ins.on_conflict_do_update(index_elements=[LockToken.id], set_={"value": LockToken.value + 1}).returning(
        LockToken.value
    )
    return int(session.execute(stmt).scalar_one())


def _locked(session: Session, cluster: str) -> errors.RunLockedError:
    lease = get(session, cluster)
    assert lease is not None, "the upsert found a conflicting lease, so it exists"
    run = f", run {lease.run_id}" if lease.run_id is not None else ""
    return errors.RunLockedError(
        f"cluster {cluster!r} is locked by {lease.holder} (token {lease.fencing_token}{run}) "
        f"until {lease.expires_at:%Y-%m-%dT%H:%M:%SZ}"
    )
