"""The stored release listing through the Repository port, on SQLite, PostgreSQL and the in-memory fake
(the same contract as tests/integration/test_ledger_repository.py, kept apart for its own table)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from upgrader.domain.catalog import Release, StoredCatalog
from upgrader.domain.versions import Version
from upgrader.fakes import InMemoryLedger
from upgrader.ledger import db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V = Version.parse


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "memory"])
def ledger(request: pytest.FixtureRequest) -> Iterator[db.Ledger]:
    if request.param == "memory":
        yield InMemoryLedger(clock=lambda: T0)  # type: ignore[misc]
        return
    url = str(request.getfixturevalue(f"{request.param}_url"))
    db.upgrade(url)
    with db.open_ledger(url) as opened:
        yield opened


def _save(ledger: db.Ledger, releases: list[Release], *, source: str, at: datetime) -> None:
    with ledger.unit_of_work() as uow:
        uow.repo.save_releases(releases, source=source, fetched_at=at)
        uow.commit()


def _stored(ledger: db.Ledger) -> StoredCatalog | None:
    with ledger.unit_of_work() as uow:
        return uow.repo.stored_catalog()


def test_nothing_is_stored_before_the_first_refresh(ledger: db.Ledger) -> None:
    assert _stored(ledger) is None
    _save(ledger, [], source="https://dl.k8s.io/release", at=T0)
    assert _stored(ledger) is None


def test_a_refresh_upserts_by_version_and_keeps_what_it_no_longer_names(ledger: db.Ledger) -> None:
    berlin = datetime(2026, 2, 10, 16, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    _save(ledger, [Release(V("v1.9.3"), None), Release(V("v1.33.12"), berlin), Release(V("v1.10.0"), T0)],
          source="https://dl.k8s.io/release", at=T0)
    _save(ledger, [Release(V("v1.33.13"), T0), Release(V("v1.10.0"), None)], source="https://mirror/release",
          at=T0 + timedelta(days=1))
    stored = _stored(ledger)
    assert stored == StoredCatalog(
        releases=(Release(V("v1.9.3"), None), Release(V("v1.10.0"), None),
                  Release(V("v1.33.12"), datetime(2026, 2, 10, 16, 0, tzinfo=UTC)), Release(V("v1.33.13"), T0)),
        fetched_at=T0 + timedelta(days=1), source="https://mirror/release")
    assert all(r.released is None or r.released.tzinfo == UTC for r in stored.releases)


def test_an_uncommitted_refresh_leaves_nothing(ledger: db.Ledger) -> None:
    with ledger.unit_of_work() as uow:
        uow.repo.save_releases([Release(V("v1.38.0"), T0)], source="x", fetched_at=T0)
    assert _stored(ledger) is None


def test_a_naive_fetch_time_is_refused(ledger: db.Ledger) -> None:
    with pytest.raises(Exception, match="naive datetime") as caught, ledger.unit_of_work() as uow:
        uow.repo.save_releases([Release(V("v1.38.0"), None)], source="x", fetched_at=datetime(2026, 3, 1))
    assert isinstance(caught.value, ValueError) or isinstance(caught.value.__cause__, ValueError)
    assert _stored(ledger) is None
