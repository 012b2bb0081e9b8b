"""The stored release listing merged into the built-in catalog (pure), and the services on the fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.catalog import Catalog, Release, StoredCatalog, merged_catalog, merged_releases
from upgrader.domain.versions import Version
from upgrader.fakes import InMemoryLedger
from upgrader.services import catalog
from upgrader.services.wiring import Actor, AppContext

T0 = datetime(2026, 12, 1, tzinfo=UTC)
versions = st.builds(Version, st.just(1), st.integers(20, 40), st.integers(0, 20))


@given(st.frozensets(versions, min_size=1), st.frozensets(versions))
def test_the_listing_adds_versions_and_never_removes_a_built_in_one(builtin: frozenset[Version],
                                                                    listed: frozenset[Version]) -> None:
    stored = StoredCatalog(tuple(Release(v, T0) for v in sorted(listed)), fetched_at=T0, source="s")
    merged = merged_catalog(Catalog.of(builtin), stored)
    assert set(merged.versions) == builtin | listed
    assert list(merged.versions) == sorted(merged.versions)
    every = merged_releases(Catalog.of(builtin), stored)
    assert [r.version for r in every] == list(merged.versions)
    assert all((r.released is not None) == (r.version in listed) for r in every)


def test_without_a_stored_listing_the_built_in_catalog_is_used_as_it_is() -> None:
    builtin = Catalog.of([Version(1, 30, 0), Version(1, 30, 1)])
    assert merged_catalog(builtin, None) is builtin
    assert merged_releases(builtin, None) == [Release(Version(1, 30, 0)), Release(Version(1, 30, 1))]


def _app(ledger: InMemoryLedger) -> AppContext:
    return AppContext(actor=Actor(user="alice", host="ops-1", command_line="upgrader test"),
                      unit_of_work_factory=ledger.unit_of_work)


def test_a_fresh_listing_is_not_fetched_again_and_the_planner_sees_it() -> None:
    ledger = InMemoryLedger(clock=lambda: T0)
    app = _app(ledger)
    with ledger.unit_of_work() as uow:
        uow.repo.save_releases([Release(Version(1, 38, 0), T0)], source="https://mirror/release", fetched_at=T0)
        uow.commit()
    # The URL is nothing that could answer: a fetch would fail, a fresh listing is never fetched.
    stored, warning = catalog.refresh_if_stale(app, url="http://127.0.0.1:1/release", now=T0 + timedelta(hours=2))
    assert warning is None and stored is not None and stored.source == "https://mirror/release"
    assert Version(1, 38, 0) in catalog.effective_catalog(app)
    assert Version(1, 24, 0) in catalog.effective_catalog(app)
    view = catalog.show(app)
    assert view.newest[-1] == Release(Version(1, 38, 0), T0)
    assert Version(1, 38, 0) not in view.builtin_only and Version(1, 37, 2) in view.builtin_only


def test_the_url_is_the_flag_else_the_environment_else_the_release_bucket(monkeypatch) -> None:
    monkeypatch.delenv(catalog.URL_VARIABLE, raising=False)
    assert catalog.catalog_url(None) == "https://dl.k8s.io/release"
    monkeypatch.setenv(catalog.URL_VARIABLE, "https://mirror.example/k8s")
    assert catalog.catalog_url(None) == "https://mirror.example/k8s"
    assert catalog.catalog_url("http://10.0.0.5/release") == "http://10.0.0.5/release"
