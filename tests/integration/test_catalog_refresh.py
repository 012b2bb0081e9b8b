"""`catalog refresh` / `catalog show` and the catalog services on a real ledger (SQLite and PostgreSQL),
reading a real local HTTP server that serves the release bucket's layout (stable-1.N.txt)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.listing_server import ListingServer, listing_server
from tests.unit.builders import cp, inventory, worker
from tests.unit.test_services import KUBECONFIG
from upgrader.domain.catalog import Release
from upgrader.domain.inventory import inventory_to_dict
from upgrader.domain.versions import Version
from upgrader.errors import NoUpgradePathError
from upgrader.ledger import db
from upgrader.services import catalog, clusters, plans
from upgrader.services.wiring import Actor, AppContext

NEWEST = {24: "v1.24.17", 25: "v1.25.16", 26: "v1.26.15", 27: "v1.27.16", 28: "v1.28.15", 29: "v1.29.15",
          30: "v1.30.14", 31: "v1.31.14", 32: "v1.32.13", 33: "v1.33.13", 34: "v1.34.12", 35: "v1.35.10",
          36: "v1.36.6", 37: "v1.37.3", 38: "v1.38.0"}
NEW_TO_THE_BUILT_IN_LIST = ["v1.34.12", "v1.35.10", "v1.36.6", "v1.37.3", "v1.38.0"]
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def released(minor: int) -> datetime:
    return datetime(2026, 1, 1 + minor - 24, 12, 30, tzinfo=UTC)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


class Ledger:
    """A migrated ledger, the services on it, and the real CLI pointed at it."""

    def __init__(self, url: str, tmp: Path) -> None:
        db.upgrade(url)
        self.url, self.tmp = url, tmp
        self.app = AppContext(db=url, actor=Actor(user="alice", host="ops-1", command_line="upgrader test"))

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "upgrader", "--db", self.url, *args], capture_output=True, text=True,
            env={**os.environ, "XDG_DATA_HOME": str(self.tmp / "xdg"), **(env or {})}, timeout=120, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def events(self) -> list[tuple[str, dict | None]]:
        with self.app.unit_of_work() as uow:
            return [(e.kind, dict(e.data) if e.data else None) for e in uow.repo.list_events()]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ListingServer]:
    with listing_server(tmp_path / "mirror") as running:
        for minor, version in NEWEST.items():
            running.write(minor, version + "\n", modified=released(minor))
        yield running


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    made = Ledger(db_url, tmp_path)
    yield made
    made.app.close()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the block ends
    return f"http://127.0.0.1:{port}/release"


def test_refresh_stores_the_listing_with_its_dates_and_show_prints_it(ledger: Ledger, server: ListingServer) -> None:
    server.remove(24)  # a mirror without v1.24: that minor stays the built-in list's
    done = ledger.cli("catalog", "refresh", "-o", "json", env={"UPGRADER_CATALOG_URL": server.url})
    assert done.code == 0, done.err
    doc = done.json()
    assert doc["source"] == server.url
    assert [r["version"] for r in doc["releases"]] == list(NEWEST.values())[1:]
    assert doc["releases"][-1]["released"] == released(38).isoformat()
    assert doc["added"] == NEW_TO_THE_BUILT_IN_LIST

    shown = ledger.cli("catalog", "show", "-o", "json")
    assert shown.code == 0, shown.err
    view = shown.json()
    assert view["source"] == server.url and view["fetched_at"] == doc["fetched_at"]
    by_minor = {m["minor"]: m for m in view["minors"]}
    assert list(by_minor) == [f"v1.{m}" for m in NEWEST]
    assert by_minor["v1.38"] == {"minor": "v1.38", "version": "v1.38.0", "released": released(38).isoformat(),
                                 "origin": "listing"}
    assert by_minor["v1.24"] == {"minor": "v1.24", "version": "v1.24.17", "released": None, "origin": "built-in"}

    table = ledger.cli("catalog", "show")
    assert table.code == 0 and f"listing from {server.url}, fetched " in table.out
    assert any(line.split() == ["v1.38", "v1.38.0", "2026-01-15", "listing"] for line in table.out.splitlines())
    assert any(line.split() == ["v1.24", "v1.24.17", "-", "built-in"] for line in table.out.splitlines())

    # The service view: built-in versions undated, the stored ones dated, and what the planner may use.
    every = catalog.releases(ledger.app)
    assert Release(Version(1, 30, 0), None) in every
    assert Release(Version(1, 30, 14), released(30)) in every
    assert Version(1, 38, 0) in catalog.effective_catalog(ledger.app)
    assert ("catalog-refreshed", {"source": server.url, "releases": 14, "newest": "v1.38.0",
                                  "added": NEW_TO_THE_BUILT_IN_LIST}) in ledger.events()


def test_show_without_a_stored_listing_is_the_built_in_catalog(ledger: Ledger) -> None:
    shown = ledger.cli("catalog", "show", "-o", "json")
    assert shown.code == 0, shown.err
    view = shown.json()
    assert view["source"] is None and view["fetched_at"] is None
    assert {m["origin"] for m in view["minors"]} == {"built-in"}
    assert view["minors"][-1]["version"] == "v1.37.2"


def test_a_garbage_marker_is_refused_naming_its_url_and_nothing_is_stored(ledger: Ledger,
                                                                          server: ListingServer) -> None:
    server.write(30, "<html><body>moved</body></html>\n")
    done = ledger.cli("catalog", "refresh", "--url", server.url)
    assert done.code == 2 and done.out == ""
    assert done.err.count("\n") == 1 and done.err.startswith(f"error: {server.url}/stable-1.30.txt: ")
    assert catalog.stored_catalog(ledger.app) is None
    assert [kind for kind, _ in ledger.events()] == []


def test_a_server_that_is_down_exits_2_and_leaves_the_stored_listing(ledger: Ledger, server: ListingServer) -> None:
    assert ledger.cli("catalog", "refresh", "--url", server.url).code == 0
    before = ledger.cli("catalog", "show", "-o", "json").json()
    url = dead_url()
    done = ledger.cli("catalog", "refresh", "--url", url)
    assert done.code == 2 and done.out == ""
    assert done.err.count("\n") == 1 and done.err.startswith(f"error: {url}/stable-1.") and "cannot be read" in done.err
    assert ledger.cli("catalog", "show", "-o", "json").json() == before


def test_refresh_if_stale_skips_a_fresh_listing_refreshes_a_stale_one_and_carries_on_offline(
        ledger: Ledger, server: ListingServer) -> None:
    stored, warning = catalog.refresh_if_stale(ledger.app, url=server.url, now=T0)  # none yet: refreshed
    assert warning is None and stored is not None and stored.fetched_at == T0
    server.write(37, "v1.37.4\n", modified=datetime(2026, 12, 1, 9, tzinfo=UTC))

    asked = len(server.requests)
    fresh, warning = catalog.refresh_if_stale(ledger.app, url=server.url, now=T0 + timedelta(hours=23))
    assert (fresh, warning) == (stored, None) and len(server.requests) == asked  # not even asked

    later = T0 + timedelta(hours=25)
    refreshed, warning = catalog.refresh_if_stale(ledger.app, url=server.url, now=later)
    assert warning is None and refreshed is not None and refreshed.fetched_at == later
    assert Release(Version(1, 37, 4), datetime(2026, 12, 1, 9, tzinfo=UTC)) in refreshed.releases
    assert Release(Version(1, 37, 3), released(37)) in refreshed.releases  # an older patch stays known

    url = dead_url()
    kept, warning = catalog.refresh_if_stale(ledger.app, url=url, now=later + timedelta(days=2))
    assert kept == refreshed
    assert warning is not None and "\n" not in warning
    assert warning.startswith("release catalog not refreshed (kept the listing fetched 2026-12-02T04:00:00Z): "
                              f"{url}/stable-1.")


def test_refresh_if_stale_offline_with_nothing_stored_warns_and_returns_none(ledger: Ledger) -> None:
    stored, warning = catalog.refresh_if_stale(ledger.app, url=dead_url(), now=T0)
    assert stored is None
    assert warning is not None and "planning from the built-in catalog" in warning


def test_the_planner_plans_to_a_version_only_the_refreshed_listing_has(ledger: Ledger, server: ListingServer,
                                                                       tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    clusters.register_cluster(ledger.app, name="prod", kubeconfig=kubeconfig, context=None)
    state = tmp_path / "inventory.json"
    state.write_text(json.dumps(inventory_to_dict(inventory(cp("cp-1", "v1.37.2"), worker("w-1", "v1.37.2")))))
    request = plans.PlanRequest(cluster="prod", target="v1.38", state=state, catalog=None)
    with pytest.raises(NoUpgradePathError):
        plans.make_plan(ledger.app, request)

    catalog.refresh(ledger.app, url=server.url)
    result = plans.make_plan(ledger.app, request)
    assert str(result.plan.target) == "v1.38.0" and result.plan_id is not None
    planned = ledger.cli("plan", "prod", "--to", "v1.37.3", "--state", str(state), "-o", "json")
    assert planned.code == 0, planned.err
    assert planned.json()["target"] == "v1.37.3"


@pytest.mark.postgres
def test_two_refreshes_at_once_on_postgres_both_succeed_and_the_later_wins(postgres_url: str, tmp_path: Path,
                                                                          server: ListingServer) -> None:
    first = Ledger(postgres_url, tmp_path)
    second = AppContext(db=postgres_url)
    try:
        old = [Release(Version(1, 33, 13), released(33)), Release(Version(1, 38, 0), None)]
        new = [Release(Version(1, 33, 13), released(34)), Release(Version(1, 38, 0), released(38)),
               Release(Version(1, 38, 1), released(38))]
        outcome: list[object] = []

        def later() -> None:
            with second.unit_of_work() as uow:  # waits here for the first transaction's row locks
                uow.repo.save_releases(new, source="b", fetched_at=T0 + timedelta(seconds=1))
                uow.commit()
            outcome.append("committed")

        with first.app.unit_of_work() as uow:
            uow.repo.save_releases(old, source="a", fetched_at=T0)
            thread = threading.Thread(target=later)
            thread.start()
            time.sleep(0.5)
            assert thread.is_alive() and outcome == []  # blocked behind the uncommitted rows
            uow.commit()
        thread.join(timeout=30)
        assert outcome == ["committed"]
        stored = catalog.stored_catalog(first.app)
        assert stored is not None and stored.source == "b" and stored.fetched_at == T0 + timedelta(seconds=1)
        assert list(stored.releases) == new

        # And whole refreshes, four at once: each succeeds, none deadlocks, the rows are not doubled.
        apps = [AppContext(db=postgres_url) for _ in range(4)]
        barrier, errors = threading.Barrier(4), []

        def refresh(app: AppContext) -> None:
            barrier.wait()
            try:
                catalog.refresh(app, url=server.url)
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=refresh, args=(app,)) for app in apps]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for app in apps:
            app.close()
        assert errors == []
        versions = [r.version for r in catalog.stored_catalog(first.app).releases]
        assert len(versions) == len(set(versions)) == len(NEWEST) + 1  # + v1.38.1 stored before
        assert sum(kind == "catalog-refreshed" for kind, _ in first.events()) == 4
    finally:
        second.close()
        first.app.close()
