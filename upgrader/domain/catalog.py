"""The release catalog: which Kubernetes versions exist and may be planned through.

The planner only ever proposes versions from the catalog, so an air-gapped mirror (or a test) can
replace it with its own list. Parsing is pure; reading the file is the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from upgrader.domain.versions import Minor, Version
from upgrader.errors import InvalidCatalogError, InvalidVersionError


@dataclass(frozen=True, slots=True)
class Catalog:
    """A set of released versions, indexed by minor for the planner's look-ups."""

    versions: tuple[Version, ...]

    @classmethod
    def of(cls, versions: Iterable[Version]) -> Catalog:
        return cls(tuple(sorted(set(versions))))

    def __contains__(self, version: object) -> bool:
        return version in set(self.versions)

    def patches(self, minor: Minor) -> tuple[Version, ...]:
        return tuple(v for v in self.versions if v.line == minor)

    def newest(self, minor: Minor, *, excluding: frozenset[Version] = frozenset()) -> Version | None:
        """The newest patch of ``minor`` that is not excluded, or None."""
        allowed = [v for v in self.patches(minor) if v not in excluding]
        return allowed[-1] if allowed else None

    @property
    def newest_minor(self) -> Minor | None:
        return self.versions[-1].line if self.versions else None


@dataclass(frozen=True, slots=True)
class Release:
    """A released version and, where the source says, when it was released (aware UTC)."""

    version: Version
    released: datetime | None = None


def parse_catalog(text: str, *, source: str = "catalog") -> Catalog:
    """One version per line; blank lines and ``#`` comments are ignored."""
    versions: list[Version] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            versions.append(Version.parse(line))
        except InvalidVersionError as e:
            raise InvalidCatalogError(f"{source}:{number}: {e}") from e
    if not versions:
        raise InvalidCatalogError(f"{source}: no versions listed")
    return Catalog.of(versions)


@dataclass(frozen=True, slots=True)
class StoredCatalog:
    """The release listing the ledger holds (``catalog refresh``): its releases, oldest first, when it
    was last fetched (the newest ``fetched_at`` of its rows) and from where."""

    releases: tuple[Release, ...]
    fetched_at: datetime
    source: str


def merged_catalog(builtin: Catalog, stored: StoredCatalog | None) -> Catalog:
    """The built-in catalog plus every stored release: a listing adds newer patches and minors, it
    never removes a built-in version (a listing names only the newest patch of each minor)."""
    if stored is None:
        return builtin
    return Catalog.of([*builtin.versions, *(r.version for r in stored.releases)])


def merged_releases(builtin: Catalog, stored: StoredCatalog | None) -> list[Release]:
    """Every version of :func:`merged_catalog`, oldest first: dated where the stored listing dates it,
    undated (``released=None``) for what only the built-in list knows."""
    dated = {r.version: r for r in stored.releases} if stored is not None else {}
    versions = merged_catalog(builtin, stored).versions
    return [dated.get(v, Release(v)) for v in versions]
