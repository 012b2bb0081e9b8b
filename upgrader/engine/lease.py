"""The run's lease on its cluster, renewed while the run lives.

A run holds the cluster's lease (ledger/locks.py) for as long as it works; a thread renews it every
third of its TTL. When a renewal finds the lease taken over (its holder was presumed dead and another
run took it), the run is told to stop; its next step write would be refused anyway (the fencing token
no longer matches), so it can never race the new holder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import structlog

from upgrader.errors import LockLostError, UpgraderError
from upgrader.ports import UnitOfWork

log = structlog.get_logger("upgrader.engine.lease")

TTL_SECONDS = 60.0  # a run dead this long loses its lease; a live one renews every TTL/3


class LeaseKeeper:
    def __init__(self, *, unit_of_work: Callable[[], UnitOfWork], now: Callable[[], datetime], cluster: str,
                 token: int, ttl: float = TTL_SECONDS, on_lost: Callable[[str], None]) -> None:
        self._unit_of_work, self._now, self._cluster, self._token = unit_of_work, now, cluster, token
        self._ttl, self._on_lost = ttl, on_lost
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{cluster}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)

    def renew(self) -> None:
        with self._unit_of_work() as uow:
            uow.repo.renew_lock(cluster=self._cluster, token=self._token, ttl_seconds=self._ttl, now=self._now())
            uow.commit()

    def _loop(self) -> None:
        while not self._stopped.wait(self._ttl / 3):
            try:
                self.renew()
            except LockLostError as e:
                self._on_lost(e.message)
                return
            except UpgraderError as e:  # a busy or briefly unreachable ledger: try again at the next tick
                log.warning("lease_renewal_failed", cluster=self._cluster, error=e.message)
