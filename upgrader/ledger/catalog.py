"""The stored release listing: written by `catalog refresh` (or a schedule tick), read by the planner.

A refresh is one ``INSERT .. ON CONFLICT (version) DO UPDATE`` of every release it read, rows in
version order: two refreshes at once (two cron hosts on one PostgreSQL) each wait for the other's
row locks in the same order, so neither deadlocks and the later one's values win. Versions stored
earlier and no longer named (an older patch of a minor) stay: they are still real releases.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upgrader.domain.catalog import Release, StoredCatalog
from upgrader.domain.versions import Version
from upgrader.ledger import locks
from upgrader.ledger.models import CatalogRelease


def save(session: Session, releases: Sequence[Release], *, source: str, fetched_at: datetime) -> None:
    rows = [{"version": str(r.version), "minor": str(r.version.line), "released_at": r.released,
             "source": source, "fetched_at": fetched_at}
            for r in sorted({r.version: r for r in releases}.values(), key=lambda r: r.version)]
    if not rows:
        return
    insert = locks.upsert(session, CatalogRelease).values(rows)
    session.execute(insert.on_conflict_do_update(
        index_elements=[CatalogRelease.version],
        set_={"minor": insert.excluded.minor, "released_at": insert.excluded.released_at,
              "source": insert.excluded.source, "fetched_at": insert.excluded.fetched_at},
    ))
    session.expire_all()


def stored(session: Session) -> StoredCatalog | None:
    """Every stored release, oldest version first; fetched_at and source are the latest refresh's."""
    found = session.scalars(sa.select(CatalogRelease)).all()
    if not found:
        return None
    latest = max(found, key=lambda row: (row.fetched_at, row.version))
    releases = sorted((Release(Version.parse(row.version), row.released_at) for row in found),
                      key=lambda r: r.version)
    return StoredCatalog(releases=tuple(releases), fetched_at=latest.fetched_at, source=latest.source)
