"""The snapshot part of the Repository port, on SQLite, PostgreSQL and the in-memory fake alike
(the same contract as tests/integration/test_ledger_repository.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.test_ledger_repository import T0, StepClock, _add
from upgrader import errors
from upgrader.domain.records import NewSnapshot, SnapshotArtefact, SnapshotState
from upgrader.domain.runs import RunId, RunStatus
from upgrader.fakes import InMemoryLedger
from upgrader.ledger import db

ARTEFACT = SnapshotArtefact(node="cp-1", kind="manifest", node_path="/etc/kubernetes/manifests/etcd.yaml",
                            stored_path="/store/prod/s1/artefacts/cp-1/etcd.yaml", sha256="b" * 64, size=812)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "memory"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryLedger(clock=StepClock())
        return
    url = str(request.getfixturevalue(f"{request.param}_url"))
    db.upgrade(url)
    with db.open_ledger(url, clock=StepClock()) as opened:
        yield opened


def new(cluster: str = "prod", *, at_minutes: int = 0, run_id: int | None = None, **extra: Any) -> NewSnapshot:
    fields: dict[str, Any] = {
        "cluster": cluster, "created_at": T0 + timedelta(minutes=at_minutes), "created_by": "alice",
        "label": "before-v1.31", "path": "/store/prod/s1/etcd.db", "size": 20512, "sha256": "a" * 64,
        "etcd_status": {"hash": 123456789, "revision": 42, "total_keys": 900, "total_size": 20480,
                        "version": None, "etcd_version": "3.5.16", "member_ids": ["8e9e05c52164694d"]},
        "source_member": "cp-2", "external": False,
        "versions": {"apiserver": {"cp-1": "v1.30.4"}, "kubelets": {"cp-1": "v1.30.4"}, "etcd_image": "3.5.15-0",
                     "packages": {"cp-1": {"kubeadm": "1.30.4-1.1", "kubelet": "1.30.4-1.1"}}},
        "artefacts": (ARTEFACT,), "known_good": True, "known_good_reason": "healthy before and after",
        "run_id": RunId(run_id) if run_id is not None else None,
    }
    fields.update(extra)
    return NewSnapshot(**fields)


def test_snapshot_round_trip(ledger: Any) -> None:
    _add(ledger)
    with ledger.unit_of_work() as uow:
        added = uow.repo.add_snapshot(new())
        uow.commit()
    with ledger.unit_of_work() as uow:
        got = uow.repo.get_snapshot(added.id)
    assert got == added
    assert (got.cluster, got.label, got.path, got.size, got.sha256) == (
        "prod", "before-v1.31", "/store/prod/s1/etcd.db", 20512, "a" * 64)
    assert got.created_at == T0 and got.created_by == "alice"
    assert got.etcd_status["revision"] == 42 and got.etcd_status["member_ids"] == ["8e9e05c52164694d"]
    assert got.versions["etcd_image"] == "3.5.15-0"
    assert got.artefacts == (ARTEFACT,)
    assert (got.known_good, got.known_good_reason, got.pinned, got.external) == (
        True, "healthy before and after", False, False)
    assert got.status is SnapshotState.COMPLETE and got.deleted_at is None and got.run_id is None


def test_snapshots_list_oldest_first_per_cluster_and_missing_is_not_found(ledger: Any) -> None:
    _add(ledger, "prod")
    _add(ledger, "dev")
    with ledger.unit_of_work() as uow:
        late = uow.repo.add_snapshot(new(at_minutes=10))
        early = uow.repo.add_snapshot(new(at_minutes=1, label=None))
        other = uow.repo.add_snapshot(new("dev", at_minutes=5, external=True))
        uow.commit()
    with ledger.unit_of_work() as uow:
        assert [s.id for s in uow.repo.list_snapshots("prod")] == [early.id, late.id]
        assert [s.id for s in uow.repo.list_snapshots()] == [early.id, other.id, late.id]
        assert uow.repo.get_snapshot(other.id).external is True
        assert uow.repo.get_snapshot(early.id).label is None
        with pytest.raises(errors.SnapshotNotFoundError, match="no snapshot with id 999") as caught:
            uow.repo.get_snapshot(999)
        with pytest.raises(errors.ClusterNotFoundError):
            uow.repo.list_snapshots("ghost")
        with pytest.raises(errors.ClusterNotFoundError):
            uow.repo.add_snapshot(new("ghost"))
    assert caught.value.exit_code == 2


def test_pin_unpin_and_delete_keep_the_row(ledger: Any) -> None:
    _add(ledger)
    with ledger.unit_of_work() as uow:
        sid = uow.repo.add_snapshot(new()).id
        assert uow.repo.set_snapshot_pinned(sid, True).pinned is True
        uow.commit()
    with ledger.unit_of_work() as uow:
        assert uow.repo.get_snapshot(sid).pinned is True
        assert uow.repo.set_snapshot_pinned(sid, False).pinned is False
        deleted = uow.repo.mark_snapshot_deleted(sid)
        uow.commit()
    assert deleted.status is SnapshotState.DELETED and deleted.deleted_at is not None and deleted.deleted_at > T0
    with ledger.unit_of_work() as uow:
        assert uow.repo.list_snapshots("prod") == []
        assert [s.id for s in uow.repo.list_snapshots("prod", include_deleted=True)] == [sid]
        assert uow.repo.get_snapshot(sid).status is SnapshotState.DELETED
        with pytest.raises(errors.SnapshotNotFoundError):
            uow.repo.set_snapshot_pinned(404, True)
        with pytest.raises(errors.SnapshotNotFoundError):
            uow.repo.mark_snapshot_deleted(404)


def test_an_uncommitted_snapshot_is_never_recorded(ledger: Any) -> None:
    _add(ledger)
    with pytest.raises(RuntimeError), ledger.unit_of_work() as uow:
        uow.repo.add_snapshot(new())
        raise RuntimeError("the event could not be written")
    with ledger.unit_of_work() as uow:
        assert uow.repo.list_snapshots(include_deleted=True) == []


def _run(ledger: Any, run_id: int, status: RunStatus) -> None:
    """A run in ``status`` with id ``run_id``: through SQL (no port writes runs yet) or the fake's hook."""
    if isinstance(ledger, InMemoryLedger):
        ledger.set_run_status(run_id, status)
        return
    with ledger.engine.begin() as conn:
        cluster_id = conn.execute(sa.text("SELECT id FROM clusters WHERE name = 'prod'")).scalar_one()
        plan_id = conn.execute(sa.text(
            "INSERT INTO plans (cluster_id, created_at, created_by, target, strategy, skipped_versions, document) "
            "VALUES (:c, :t, 'a', 'v1.31.0', '{}', '[]', '{}') RETURNING id"), {"c": cluster_id, "t": T0}).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO runs (id, plan_id, cluster_id, status, started_by, host, command_line, fencing_token, "
            "created_at) VALUES (:id, :p, :c, :s, 'a', 'h', 'upgrader apply', 1, :t)"),
            {"id": run_id, "p": plan_id, "c": cluster_id, "s": status.value, "t": T0})


def test_snapshots_held_by_unfinished_runs_are_in_use(ledger: Any) -> None:
    _add(ledger)
    for run_id, status in ((1, RunStatus.RUNNING), (2, RunStatus.SUCCEEDED), (3, RunStatus.FAILED),
                           (4, RunStatus.ROLLED_BACK), (5, RunStatus.INTERRUPTED)):
        _run(ledger, run_id, status)
    with ledger.unit_of_work() as uow:
        ids = {run_id: uow.repo.add_snapshot(new(run_id=run_id, at_minutes=run_id)).id for run_id in range(1, 6)}
        free = uow.repo.add_snapshot(new(at_minutes=9)).id
        uow.commit()
    with ledger.unit_of_work() as uow:
        in_use = uow.repo.snapshots_in_use("prod")
        assert uow.repo.get_snapshot(ids[1]).run_id == 1
    # a failed run can still be rolled back: it holds its snapshot as a running or interrupted one does
    assert in_use == {ids[1], ids[3], ids[5]}
    assert free not in in_use


def test_a_snapshot_of_an_unknown_run_is_refused_and_never_held(ledger: Any) -> None:
    """Every backend alike: a run id the ledger does not know is refused (exit 2), not recorded as a
    snapshot no run holds (the fake once took an unknown run for a finished one; SQL broke its
    foreign key with a traceback)."""
    _add(ledger)
    with pytest.raises(errors.RunNotFoundError, match="no run with id 99") as caught, \
            ledger.unit_of_work() as uow:
        uow.repo.add_snapshot(new(run_id=99))
    assert caught.value.exit_code == 2
    _run(ledger, 99, RunStatus.RUNNING)
    with ledger.unit_of_work() as uow:
        held = uow.repo.add_snapshot(new(run_id=99)).id
        uow.commit()
    with ledger.unit_of_work() as uow:
        assert uow.repo.snapshots_in_use("prod") == {held}
        assert [s.id for s in uow.repo.list_snapshots("prod", include_deleted=True)] == [held]
