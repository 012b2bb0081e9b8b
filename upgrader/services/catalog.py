"""The release catalog as the planner sees it: the built-in list plus the stored upstream listing.

``refresh`` reads the listing (upgrader.web.releases: the ``stable-1.N.txt`` markers under
``--url``, else ``$UPGRADER_CATALOG_URL``, else https://dl.k8s.io/release) and stores it in the
ledger with an event, all or nothing. ``effective_catalog`` is what `plan` and `preflight` use when
no ``--catalog FILE`` is given: the stored listing adds newer patches and minors, it never removes
a built-in version. ``refresh_if_stale`` is the schedule tick's: it refreshes a listing older than a
day and, offline or facing a broken mirror, carries on with the stored one and says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from upgrader.data import builtin_catalog
from upgrader.domain.catalog import Catalog, Release, StoredCatalog, merged_catalog, merged_releases
from upgrader.domain.redaction import redact
from upgrader.domain.versions import Version
from upgrader.errors import CatalogUnavailableError, InvalidCatalogError
from upgrader.services.audit import record_event
from upgrader.services.wiring import AppContext

# upgrader.web.releases is imported where a listing is fetched: http.client and ssl cost ~40 ms, which
# `plan` and an idle schedule tick (reading the stored listing only) never need.
URL_VARIABLE = "UPGRADER_CATALOG_URL"
MAX_AGE = timedelta(days=1)  # a tick refreshes a listing older than this
TIMEOUT = 10.0  # seconds for each marker


@dataclass(frozen=True, slots=True)
class RefreshResult:
    source: str  # the listing's URL, credentials hidden (as stored)
    fetched_at: datetime
    releases: tuple[Release, ...]  # what the listing named: the newest patch of each minor
    added: tuple[Version, ...]  # versions the planner did not know before this refresh

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "fetched_at": self.fetched_at.isoformat(),
                "releases": [release_dict(r) for r in self.releases], "added": [str(v) for v in self.added]}


@dataclass(frozen=True, slots=True)
class CatalogView:
    """What `catalog show` prints: the newest patch of each minor, and where the listing came from."""

    newest: tuple[Release, ...]  # one per minor, oldest minor first
    builtin_only: frozenset[Version]  # versions only the built-in list has (no stored listing names them)
    stored: StoredCatalog | None

    def to_dict(self) -> dict[str, Any]:
        stored = self.stored
        return {
            "source": stored.source if stored else None,
            "fetched_at": stored.fetched_at.isoformat() if stored else None,
            "minors": [{"minor": str(r.version.line), **release_dict(r),
                        "origin": "built-in" if r.version in self.builtin_only else "listing"}
                       for r in self.newest],
        }


def release_dict(release: Release) -> dict[str, Any]:
    return {"version": str(release.version),
            "released": release.released.isoformat() if release.released is not None else None}


def catalog_url(url: str | None) -> str:
    """``--url``, else ``$UPGRADER_CATALOG_URL``, else the Kubernetes release bucket."""
    from upgrader.web.releases import DEFAULT_URL

    return url or os.environ.get(URL_VARIABLE) or DEFAULT_URL


def refresh(app: AppContext, *, url: str | None, now: datetime | None = None) -> RefreshResult:
    """Read the listing and store it (with a ``catalog-refreshed`` event) in one transaction; a listing
    that cannot be read or is malformed stores nothing (CatalogUnavailableError, InvalidCatalogError)."""
    from upgrader.web.releases import fetch_listing

    base = catalog_url(url)
    builtin = builtin_catalog()
    known = builtin.newest_minor
    listing = fetch_listing(base, timeout=TIMEOUT, known_minor=known.minor if known is not None else None)
    fetched_at = now or app.clock.now()
    source = redact(base.rstrip("/"))
    with app.unit_of_work() as uow:
        before = merged_catalog(builtin, uow.repo.stored_catalog())
        uow.repo.save_releases(listing, source=source, fetched_at=fetched_at)
        added = tuple(r.version for r in listing if r.version not in before)
        record_event(app, uow, "catalog-refreshed", cluster=None, data={
            "source": source, "releases": len(listing), "newest": str(listing[-1].version),
            "added": [str(v) for v in added]})
        uow.commit()
    return RefreshResult(source=source, fetched_at=fetched_at, releases=tuple(listing), added=added)


def stored_catalog(app: AppContext) -> StoredCatalog | None:
    with app.unit_of_work() as uow:
        return uow.repo.stored_catalog()


def effective_catalog(app: AppContext) -> Catalog:
    """The built-in catalog and every stored release: what the planner may propose."""
    return merged_catalog(builtin_catalog(), stored_catalog(app))


def releases(app: AppContext) -> list[Release]:
    """Every version of :func:`effective_catalog`, oldest first, dated where the stored listing dates it."""
    return merged_releases(builtin_catalog(), stored_catalog(app))


def show(app: AppContext) -> CatalogView:
    stored = stored_catalog(app)
    every = merged_releases(builtin_catalog(), stored)
    newest = {r.version.line: r for r in every}  # oldest first, so each minor keeps its newest patch
    named = {r.version for r in stored.releases} if stored is not None else set()
    return CatalogView(newest=tuple(newest[m] for m in sorted(newest)),
                       builtin_only=frozenset(r.version for r in every if r.version not in named), stored=stored)


def refresh_if_stale(app: AppContext, *, url: str | None, max_age: timedelta = MAX_AGE,
                     now: datetime) -> tuple[StoredCatalog | None, str | None]:
    """The stored listing, refreshed first when it is absent or older than ``max_age`` at ``now``.
    Never raises for the listing: when it cannot be read (offline, a broken mirror) the stored one (or
    None) comes back with a one-line warning saying why; otherwise the warning is None."""
    stored = stored_catalog(app)
    if stored is not None and now - stored.fetched_at < max_age:
        return stored, None
    try:
        refresh(app, url=url, now=now)
    except (CatalogUnavailableError, InvalidCatalogError) as e:
        kept = (f"kept the listing fetched {stored.fetched_at:%Y-%m-%dT%H:%M:%SZ}" if stored is not None
                else "planning from the built-in catalog")
        return stored, redact(f"release catalog not refreshed ({kept}): {e.message}")
    return stored_catalog(app), None
