"""Every repository method against the real backends (SQLite file and PostgreSQL) and the in-memory
fake: this is the UnitOfWork/Repository port's contract, so upgrader.fakes behaves as the ledger does.
Tests that look under the port (SQL NULLs, driver exceptions) run on the SQL backends only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from upgrader import errors
from upgrader.domain.records import NewObservation, ObservationSource
from upgrader.fakes import InMemoryLedger
from upgrader.ledger import db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class StepClock:
    """Each reading is one second after the previous: ordering is visible, nothing waits."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "memory"])
def ledger(request: pytest.FixtureRequest) -> Iterator[db.Ledger]:
    """The port: each SQL backend, and the in-memory fake held to the same tests."""
    if request.param == "memory":
        yield InMemoryLedger(clock=StepClock())  # type: ignore[misc]
        return
    url = str(request.getfixturevalue(f"{request.param}_url"))
    db.upgrade(url)
    with db.open_ledger(url, clock=StepClock()) as opened:
        yield opened


@pytest.fixture
def sql_ledger(db_url: str) -> Iterator[db.Ledger]:
    db.upgrade(db_url)
    with db.open_ledger(db_url, clock=StepClock()) as opened:
        yield opened


def _add(ledger: db.Ledger, name: str = "prod", **extra: object) -> None:
    with ledger.unit_of_work() as uow:
        uow.repo.add_cluster(
            name=name,
            kubeconfig=f"/home/ops/.kube/{name}",
            context=extra.get("context"),  # type: ignore[arg-type]
            transport=extra.get("transport"),  # type: ignore[arg-type]
            actor="alice",
        )
        uow.commit()


def test_cluster_round_trip(ledger: db.Ledger) -> None:
    _add(ledger, "prod", context="prod-admin", transport={"kind": "ssh", "user": "ops"})
    _add(ledger, "dev")
    with ledger.unit_of_work() as uow:
        prod = uow.repo.get_cluster("prod")
        names = [c.name for c in uow.repo.list_clusters()]
    assert prod.kubeconfig == "/home/ops/.kube/prod"
    assert prod.context == "prod-admin"
    assert prod.transport == {"kind": "ssh", "user": "ops"}
    assert prod.created_by == "alice"
    assert prod.created_at.tzinfo is not None and prod.created_at > T0
    assert prod.skips == ()
    assert names == ["dev", "prod"]


def test_cluster_transport_settings_are_replaced_rolled_back_and_cleared(ledger: db.Ledger) -> None:
    _add(ledger, "prod", transport={"kind": "ssh", "user": "ops"})
    ssh = {"kind": "ssh", "user": "admin", "port": 2222, "options": {"ServerAliveInterval": "10"},
           "nodes": {"cp-1": {"address": "10.0.0.11", "user": "root"}}}
    with ledger.unit_of_work() as uow:
        assert uow.repo.set_cluster_transport("prod", ssh).transport == ssh
        uow.commit()
    with ledger.unit_of_work() as uow:
        uow.repo.set_cluster_transport("prod", {"kind": "local"})  # not committed: rolled back
    with ledger.unit_of_work() as uow:
        assert uow.repo.get_cluster("prod").transport == ssh
        assert uow.repo.set_cluster_transport("prod", None).transport is None
        uow.commit()
    with ledger.unit_of_work() as uow:
        assert uow.repo.get_cluster("prod").transport is None
        with pytest.raises(errors.ClusterNotFoundError):
            uow.repo.set_cluster_transport("nope", ssh)


def test_cluster_without_transport_stores_sql_null(sql_ledger: db.Ledger) -> None:
    _add(sql_ledger, "dev")
    with sql_ledger.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM clusters WHERE transport IS NULL")).scalar() == 1


def test_duplicate_cluster_is_refused_and_the_transaction_stays_usable(sql_ledger: db.Ledger) -> None:
    _add(sql_ledger, "prod")
    with sql_ledger.unit_of_work() as uow:
        with pytest.raises(errors.ClusterExistsError, match="cluster 'prod' already exists") as caught:
            uow.repo.add_cluster(name="prod", kubeconfig="/k", context=None, transport=None, actor="bob")
        assert isinstance(caught.value.__cause__, sa.exc.IntegrityError)
        uow.repo.add_cluster(name="staging", kubeconfig="/k", context=None, transport=None, actor="bob")
        uow.commit()
    with sql_ledger.unit_of_work() as uow:
        assert [c.name for c in uow.repo.list_clusters()] == ["prod", "staging"]
        assert uow.repo.get_cluster("prod").created_by == "alice"


def test_unknown_cluster_is_not_found_everywhere(ledger: db.Ledger) -> None:
    message = r"no cluster named 'ghost' \(see `upgrader cluster list`\)"
    with ledger.unit_of_work() as uow:
        for call in (
            lambda: uow.repo.get_cluster("ghost"),
            lambda: uow.repo.remove_cluster("ghost"),
            lambda: uow.repo.add_skip(cluster="ghost", version="v1.31.0", reason="x", actor="a"),
            lambda: uow.repo.list_plans("ghost"),
            lambda: uow.repo.record_observation(
                cluster="ghost", observed_at=T0, fingerprint="f", source="live", inventory={}
            ),
        ):
            with pytest.raises(errors.ClusterNotFoundError, match=message):
                call()


def test_uncommitted_work_is_rolled_back(ledger: db.Ledger) -> None:
    with ledger.unit_of_work() as uow:
        uow.repo.add_cluster(name="prod", kubeconfig="/k", context=None, transport=None, actor="a")
    with pytest.raises(RuntimeError), ledger.unit_of_work() as uow:
        uow.repo.add_cluster(name="dev", kubeconfig="/k", context=None, transport=None, actor="a")
        raise RuntimeError("use case failed half way")
    with ledger.unit_of_work() as uow:
        assert uow.repo.list_clusters() == []


def test_skips_add_update_remove(ledger: db.Ledger) -> None:
    _add(ledger)
    with ledger.unit_of_work() as uow:
        first = uow.repo.add_skip(cluster="prod", version="v1.31.2", reason="CVE in kube-proxy", actor="alice")
        again = uow.repo.add_skip(cluster="prod", version="v1.31.2", reason="regression #123", actor="bob")
        uow.repo.add_skip(cluster="prod", version="v1.30.9", reason="etcd bug", actor="alice")
        uow.commit()
    assert first.reason == "CVE in kube-proxy"
    assert again.reason == "regression #123"
    assert again.created_by == "alice"  # idempotent: only the reason changes
    with ledger.unit_of_work() as uow:
        skips = uow.repo.get_cluster("prod").skips
        assert [(s.version, s.reason) for s in skips] == [
            ("v1.30.9", "etcd bug"),
            ("v1.31.2", "regression #123"),
        ]
        assert uow.repo.remove_skip(cluster="prod", version="v1.31.2") is True
        assert uow.repo.remove_skip(cluster="prod", version="v1.31.2") is False
        uow.commit()
    with ledger.unit_of_work() as uow:
        assert [s.version for s in uow.repo.get_cluster("prod").skips] == ["v1.30.9"]


def test_observation_and_plan_round_trip(ledger: db.Ledger) -> None:
    _add(ledger)
    inventory = {"nodes": [{"name": "cp-1", "kubelet": "v1.31.4"}], "etcd": "3.5.15"}
    steps = [
        {
            "n": 1,
            "action": "preflight",
            "node": None,
            "version": None,
            "batch": None,
            "reversibility": "none",
        },
        {
            "n": 2,
            "action": "snapshot",
            "node": "cp-1",
            "version": None,
            "batch": None,
            "reversibility": "none",
        },
        {
            "n": 3,
            "action": "upgrade-kubelet",
            "node": "w-1",
            "version": "v1.32.0",
            "batch": 1,
            "reversibility": "manifest-swap",
        },
    ]
    with ledger.unit_of_work() as uow:
        plan_id = uow.repo.save_plan(
            cluster="prod",
            observation=NewObservation(
                observed_at=T0, fingerprint="a" * 64, source=ObservationSource.LIVE, inventory=inventory
            ),
            created_by="alice",
            target="v1.32.0",
            strategy={"workers": "skip-level", "batch": 2},
            skipped_versions=["v1.31.5"],
            source_fingerprint="a" * 64,
            document={"steps": 3, "risks": ["drain"]},
            steps=steps,
        )
        in_the_same_transaction = uow.repo.get_plan(plan_id)
        uow.commit()
    with ledger.unit_of_work() as uow:
        plan = uow.repo.get_plan(plan_id)
        latest = uow.repo.latest_observation("prod")
    assert in_the_same_transaction == plan and plan.observation_id is not None
    assert latest is not None
    assert (latest.id, latest.observed_at, latest.source, latest.inventory) == (
        plan.observation_id,
        T0,
        ObservationSource.LIVE,
        inventory,
    )
    assert plan.cluster == "prod"
    assert plan.target == "v1.32.0" and plan.created_by == "alice"
    assert plan.strategy == {"workers": "skip-level", "batch": 2}
    assert list(plan.skipped_versions) == ["v1.31.5"]
    assert plan.document == {"steps": 3, "risks": ["drain"]}
    assert [(s.n, s.action, s.node, s.version, s.batch, s.reversibility) for s in plan.steps] == [
        (s["n"], s["action"], s["node"], s["version"], s["batch"], s["reversibility"]) for s in steps
    ]


def test_plans_are_listed_per_cluster_and_missing_ones_are_usage_errors(ledger: db.Ledger) -> None:
    _add(ledger, "prod")
    _add(ledger, "dev")
    with ledger.unit_of_work() as uow:
        ids = [
            uow.repo.save_plan(
                cluster=name,
                observation=None,
                created_by="a",
                target="v1.32.0",
                strategy={},
                skipped_versions=[],
                source_fingerprint=None,
                document={},
                steps=[],
            )
            for name in ("prod", "dev", "prod")
        ]
        uow.commit()
    with ledger.unit_of_work() as uow:
        assert [p.id for p in uow.repo.list_plans("prod")] == [ids[0], ids[2]]
        assert [p.id for p in uow.repo.list_plans()] == ids
        with pytest.raises(errors.PlanNotFoundError, match="no plan with id 999") as caught:
            uow.repo.get_plan(999)
    assert isinstance(caught.value, errors.UsageError)


def test_invalid_observation_source_is_refused(ledger: db.Ledger) -> None:
    _add(ledger)
    with ledger.unit_of_work() as uow, pytest.raises(ValueError):
        uow.repo.record_observation(cluster="prod", observed_at=T0, fingerprint="f", source="guess", inventory={})


def test_events_append_and_tail(ledger: db.Ledger) -> None:
    with ledger.unit_of_work() as uow:
        for i in range(5):
            uow.repo.append_event(
                kind="step_succeeded",
                actor="alice",
                host="ops-1",
                command_line="upgrader apply 1",
                cluster="prod" if i % 2 == 0 else "dev",
                run_id=i,
                data={"i": i},
            )
        uow.repo.append_event(kind="db_upgraded", actor="alice", host="ops-1", command_line="upgrader db upgrade")
        uow.commit()
    with ledger.unit_of_work() as uow:
        everything = uow.repo.list_events()
        prod = uow.repo.list_events(cluster="prod")
        tail = uow.repo.list_events(limit=2)
    assert len(everything) == 6
    assert [e.data for e in prod] == [{"i": 0}, {"i": 2}, {"i": 4}]
    assert [e.kind for e in tail] == ["step_succeeded", "db_upgraded"]
    assert tail[-1].cluster is None and tail[-1].data is None and tail[-1].run_id is None
    assert [e.at for e in everything] == sorted(e.at for e in everything)


def test_events_of_one_run_and_kind_are_read_however_many_came_after(ledger: db.Ledger) -> None:
    with ledger.unit_of_work() as uow:
        for i in range(6):
            uow.repo.append_event(kind="confirmed" if i % 2 == 0 else "declined", actor="alice", host="ops-1",
                                  command_line="upgrader runbook run", cluster="prod", run_id=7 if i < 4 else 8,
                                  data={"i": i})
        for _ in range(3):
            uow.repo.append_event(kind="confirmed", actor="bob", host="ops-2", command_line="upgrader apply 2",
                                  cluster="dev", run_id=7)
        uow.commit()
    with ledger.unit_of_work() as uow:
        assert [e.data for e in uow.repo.list_events("prod", limit=2, run_id=7)] == [{"i": 2}, {"i": 3}]
        assert [e.data for e in uow.repo.list_events("prod", run_id=7, kind="confirmed")] == [{"i": 0}, {"i": 2}]
        assert [e.data for e in uow.repo.list_events("prod", kind="declined")] == [{"i": 1}, {"i": 3}, {"i": 5}]
        assert len(uow.repo.list_events(run_id=7, kind="confirmed")) == 5  # both clusters' run 7
        assert uow.repo.list_events("prod", run_id=9) == []


def test_removing_a_cluster_keeps_its_audit_trail(sql_ledger: db.Ledger) -> None:
    _add(sql_ledger)
    with sql_ledger.unit_of_work() as uow:
        uow.repo.add_skip(cluster="prod", version="v1.31.2", reason="bad", actor="a")
        uow.repo.save_plan(
            cluster="prod",
            observation=None,
            created_by="a",
            target="v1.32.0",
            strategy={},
            skipped_versions=[],
            source_fingerprint=None,
            document={},
            steps=[{"n": 1, "action": "preflight", "reversibility": "none"}],
        )
        uow.repo.append_event(kind="cluster_added", actor="a", host="h", command_line="c", cluster="prod")
        uow.repo.remove_cluster("prod")
        uow.commit()
    with sql_ledger.unit_of_work() as uow:
        assert uow.repo.list_clusters() == []
        assert uow.repo.list_plans() == []
        assert [e.cluster for e in uow.repo.list_events()] == ["prod"]
    with sql_ledger.engine.connect() as conn:
        for table in ("skipped_versions", "plans", "plan_steps"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0


def test_lock_acquire_renew_release(ledger: db.Ledger) -> None:
    with ledger.unit_of_work() as uow:
        token = uow.repo.acquire_lock(cluster="prod", holder="alice@ops-1:42", ttl_seconds=60, now=T0, run_id=7)
        uow.commit()
    with ledger.unit_of_work() as uow:
        lease = uow.repo.get_lock("prod")
        assert lease is not None
        assert (lease.holder, lease.run_id, lease.fencing_token) == ("alice@ops-1:42", 7, token)
        assert lease.expires_at == T0 + timedelta(seconds=60)
        uow.repo.renew_lock(cluster="prod", token=token, ttl_seconds=60, now=T0 + timedelta(seconds=50))
        uow.commit()
    with ledger.unit_of_work() as uow:
        lease = uow.repo.get_lock("prod")
        assert lease is not None and lease.expires_at == T0 + timedelta(seconds=110)
        assert uow.repo.release_lock(cluster="prod", token=token) is True
        assert uow.repo.release_lock(cluster="prod", token=token) is False
        assert uow.repo.get_lock("prod") is None
        uow.commit()


def test_held_lock_is_refused_naming_the_holder(ledger: db.Ledger) -> None:
    with ledger.unit_of_work() as uow:
        uow.repo.acquire_lock(cluster="prod", holder="alice@ops-1:42", ttl_seconds=60, now=T0, run_id=7)
        uow.commit()
    later = T0 + timedelta(seconds=59)
    with (
        ledger.unit_of_work() as uow,
        pytest.raises(errors.RunLockedError, match=r"locked by alice@ops-1:42 .*run 7") as caught,
    ):
        uow.repo.acquire_lock(cluster="prod", holder="bob@ops-2:9", ttl_seconds=60, now=later)
    assert caught.value.exit_code == 7
    with ledger.unit_of_work() as uow:  # another cluster is independent
        uow.repo.acquire_lock(cluster="dev", holder="bob@ops-2:9", ttl_seconds=60, now=T0)
        uow.commit()


def test_expired_lock_is_taken_over_and_the_old_holder_is_fenced(ledger: db.Ledger) -> None:
    with ledger.unit_of_work() as uow:
        old = uow.repo.acquire_lock(cluster="prod", holder="alice", ttl_seconds=60, now=T0)
        uow.commit()
    with ledger.unit_of_work() as uow:
        new = uow.repo.acquire_lock(cluster="prod", holder="bob", ttl_seconds=60, now=T0 + timedelta(seconds=60))
        uow.commit()
    assert new > old
    with ledger.unit_of_work() as uow:
        with pytest.raises(errors.LockLostError, match=r"no longer held; it is now held by bob"):
            uow.repo.renew_lock(cluster="prod", token=old, ttl_seconds=60, now=T0 + timedelta(seconds=61))
        assert uow.repo.release_lock(cluster="prod", token=old) is False
        lease = uow.repo.get_lock("prod")
        assert lease is not None and lease.holder == "bob" and lease.fencing_token == new


def test_fencing_tokens_increase_across_clusters_and_holders(ledger: db.Ledger) -> None:
    tokens = []
    for i in range(6):
        with ledger.unit_of_work() as uow:
            cluster = ("prod", "dev", "staging")[i % 3]
            tokens.append(
                uow.repo.acquire_lock(
                    cluster=cluster, holder=f"h{i}", ttl_seconds=10, now=T0 + timedelta(seconds=20 * i)
                )
            )
            uow.commit()
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_same_holder_may_reacquire_with_a_new_token(ledger: db.Ledger) -> None:
    with ledger.unit_of_work() as uow:
        first = uow.repo.acquire_lock(cluster="prod", holder="alice", ttl_seconds=60, now=T0)
        second = uow.repo.acquire_lock(cluster="prod", holder="alice", ttl_seconds=60, now=T0)
        uow.commit()
    assert second > first
    with ledger.unit_of_work() as uow, pytest.raises(errors.LockLostError):
        uow.repo.renew_lock(cluster="prod", token=first, ttl_seconds=60, now=T0)


def test_naive_timestamps_are_refused(sql_ledger: db.Ledger) -> None:
    with sql_ledger.unit_of_work() as uow, pytest.raises(sa.exc.StatementError, match="naive datetime"):
        uow.repo.acquire_lock(cluster="prod", holder="a", ttl_seconds=1, now=datetime(2026, 1, 1))


@pytest.mark.postgres
def test_a_connection_lost_mid_unit_of_work_is_a_database_error(postgres_url: str) -> None:
    db.upgrade(postgres_url)
    killer = sa.create_engine(postgres_url)
    terminate = sa.text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    try:
        with db.open_ledger(postgres_url) as ledger:
            with pytest.raises(errors.DatabaseError) as caught, ledger.unit_of_work() as uow:
                uow.repo.list_clusters()
                with killer.begin() as conn:
                    conn.execute(terminate)
                uow.repo.list_clusters()
            assert "\n" not in caught.value.message
            assert isinstance(caught.value.__cause__, sa.exc.OperationalError)
    finally:
        killer.dispose()
