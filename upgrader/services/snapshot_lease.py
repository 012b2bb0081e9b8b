"""The cluster's lease around `snapshot create` and `snapshot prune`, as a run holds it.

A prune deletes snapshots a run may be about to take or to need, and a create records one prune may
be deciding about: both take the cluster's lease (ledger ``cluster_locks``, see ledger/locks.py) so
neither overlaps a run nor each other. Another holder's valid lease refuses them with
RunLockedError (exit 7). The lease is released when the block ends, however it ends; one left by a
killed process expires after its TTL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from upgrader.services.wiring import AppContext

TTL_SECONDS = 1800.0  # longer than a create's save (300 s at most) plus its capture, or a prune


@dataclass
class Lease:
    app: AppContext
    cluster: str
    token: int


def holder(app: AppContext, what: str) -> str:
    return f"snapshot-{what}@{app.actor.host}:{os.getpid()}"[:255]  # the ledger's holder column


@contextmanager
def cluster_lease(app: AppContext, cluster: str, what: str) -> Iterator[Lease]:
    with app.unit_of_work() as uow:
        token = uow.repo.acquire_lock(cluster=cluster, holder=holder(app, what), ttl_seconds=TTL_SECONDS,
                                      now=app.clock.now())
        uow.commit()
    try:
        yield Lease(app, cluster, int(token))
    finally:
        with app.unit_of_work() as uow:
            uow.repo.release_lock(cluster=cluster, token=token)
            uow.commit()
