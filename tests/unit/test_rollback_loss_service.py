"""loss_since and rehearse on fakes: a snapshot taken by the real use case, a FakeEtcdTool whose scratch
etcd holds the snapshot's keys and whose live etcd holds the cluster's, an in-memory ledger."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.unit.snapshot_world import SECRET, SnapshotWorld
from upgrader import errors
from upgrader.domain.records import EventRecord
from upgrader.fakes import FakeEtcdTool
from upgrader.ports import EtcdMember
from upgrader.services import snapshot_checks, snapshots
from upgrader.services.audit import record_event
from upgrader.services.etcd_lineage import RESTORED, lineage
from upgrader.services.rollback_loss import LostObject, loss_since, rehearse

SNAPSHOT_KEYS = {"/registry/configmaps/default/kept": 10, "/registry/configmaps/default/edited": 11,
                 "/registry/secrets/default/db-password": 12, "/registry/leases/kube-node-lease/cp-1": 13}
LIVE_KEYS = {"/registry/configmaps/default/kept": 10, "/registry/configmaps/default/edited": 40,
             "/registry/deployments/default/web": 41, "/registry/leases/kube-node-lease/cp-1": 50,
             "/registry/events/default/web.1": 51}


@pytest.fixture
def world(tmp_path: Path) -> SnapshotWorld:
    w = SnapshotWorld(tmp_path)
    w.app.scratch_etcd_factory = w.etcd.scratch
    return w


def _snapshot(world: SnapshotWorld):  # type: ignore[no-untyped-def]
    world.etcd.payload += b"".join(f"/registry/entry/{i}\n".encode() for i in range(8))  # totalKey: 10
    made = snapshots.create_snapshot(world.app, cluster="prod").record
    world.etcd.snapshot_keyspace = dict(SNAPSHOT_KEYS)
    world.etcd.keyspace = dict(LIVE_KEYS)
    return made


def test_the_loss_names_every_changed_object_and_counts_the_churn(world: SnapshotWorld) -> None:
    record = _snapshot(world)
    world.clock.advance(300)
    with world.ledger.unit_of_work() as uow:
        cluster = uow.repo.get_cluster("prod")
    report = loss_since(world.app, cluster, record)
    assert report.objects == (
        LostObject("configmaps", "default", "edited", "reverts", "/registry/configmaps/default/edited"),
        LostObject("deployments.apps", "default", "web", "vanishes", "/registry/deployments/default/web"),
        LostObject("secrets", "default", "db-password", "reappears", "/registry/secrets/default/db-password"))
    assert report.snapshot_revision == 4242 and report.live_revision == 4242  # the fake's live revision
    assert report.seconds_since == 300.0 and report.keys_compared == 6
    doc = report.to_dict()
    assert doc["excluded"]["kinds"]["leases"] == 1 and doc["excluded"]["kinds"]["events"] == 1
    assert SECRET not in json.dumps(doc)  # names only
    assert world.etcd.scratch_open == 0


def test_a_snapshot_of_another_cluster_is_refused(world: SnapshotWorld) -> None:
    record = _snapshot(world)
    with world.ledger.unit_of_work() as uow:
        dev = uow.repo.get_cluster("dev")
    with pytest.raises(errors.IntegrityError) as e:
        loss_since(world.app, dev, record)
    assert e.value.exit_code == 8 and world.etcd.scratches == []


def test_rehearse_checks_records_and_lists_the_loss(world: SnapshotWorld) -> None:
    record = _snapshot(world)
    result = rehearse(world.app, cluster="prod", snapshot_id=record.id)
    assert result.ok and [c.name for c in result.checks] == ["integrity", "revision", "hash", "keys"]
    assert result.loss is not None and len(result.loss.objects) == 3
    assert result.restored_keys == 4 and world.etcd.scratches == [Path(record.path)]
    kinds = [(kind, data) for kind, data in world.events() if kind == "rollback-rehearsed"]
    assert len(kinds) == 1
    data = kinds[0][1]
    assert data["snapshot"] == record.id and data["ok"] is True
    assert {c["name"] for c in data["checks"]} == {"integrity", "revision", "hash", "keys"}
    assert data["loss"]["counts"] == {"reverts": 1, "vanishes": 1, "reappears": 1}
    assert json.loads(json.dumps(result.to_dict()))["loss"]["objects"][0]["name"] == "edited"


def test_a_corrupt_snapshot_is_refused_before_any_restore(world: SnapshotWorld) -> None:
    record = _snapshot(world)
    world.etcd.corrupt(Path(record.path))
    with pytest.raises(errors.IntegrityError) as e:
        rehearse(world.app, cluster="prod", snapshot_id=record.id)
    assert e.value.exit_code == 8
    assert world.etcd.scratches == [] and not [k for k, _ in world.events() if k == "rollback-rehearsed"]


def test_more_keys_than_the_status_counted_fail_the_rehearsal(world: SnapshotWorld) -> None:
    record = _snapshot(world)
    assert record.etcd_status["total_keys"] == 10
    world.etcd.snapshot_keyspace |= {f"/registry/configmaps/default/extra-{i}": 20 + i for i in range(7)}
    with pytest.raises(errors.IntegrityError, match="keys: 11 keys restored, more than the 10") as e:
        rehearse(world.app, cluster="prod", snapshot_id=record.id)
    assert e.value.exit_code == 8
    events = [data for kind, data in world.events() if kind == "rollback-rehearsed"]
    assert len(events) == 1 and events[0]["ok"] is False and "loss" not in events[0]


def test_without_a_scratch_etcd_the_tools_to_install_are_named(tmp_path: Path) -> None:
    world = SnapshotWorld(tmp_path)  # a FakeEtcdTool and no scratch factory: not this host's tools
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    with pytest.raises(errors.EtcdToolError, match="install") as e:
        rehearse(world.app, cluster="prod", snapshot_id=record.id)
    assert e.value.exit_code == 2


def test_the_fake_scratch_keeps_the_real_ones_rules(tmp_path: Path) -> None:
    """As upgrader.etcd.scratch: a flipped file is refused (exit 8) and nothing stays open; a listing's
    revision is at least every key's mod revision; hashkv depends on the revision asked for."""
    tool = FakeEtcdTool(revision=30)
    path = tmp_path / "s.db"
    tool.save(endpoint="e", tls=None, path=path)
    tool.snapshot_keyspace = {"/registry/configmaps/default/a": 10, "/registry/configmaps/default/b": 30}
    with tool.scratch(path) as scratch:
        listing = scratch.keys()
        assert listing.revision == 30 and max(listing.keys.values()) <= listing.revision
        assert scratch.hashkv(30) != scratch.hashkv(10)
        assert tool.scratch_open == 1
    assert tool.scratch_open == 0
    FakeEtcdTool.corrupt(path)
    with pytest.raises(errors.IntegrityError) as e, tool.scratch(path):
        pass
    assert e.value.exit_code == 8 and tool.scratch_open == 0
    tool.keyspace = {"/registry/pods/default/p": 40}
    assert tool.keys(["e"], None).revision == 40


def test_a_restored_key_newer_than_the_recorded_revision_fails_the_rehearsal(world: SnapshotWorld) -> None:
    record = _snapshot(world)
    world.etcd.snapshot_keyspace["/registry/configmaps/default/late"] = 5000  # after revision 4242
    with pytest.raises(errors.IntegrityError, match="revision: the restored etcd holds a key written at revision "
                                                    "5000, after the recorded 4242") as e:
        rehearse(world.app, cluster="prod", snapshot_id=record.id)
    assert e.value.exit_code == 8 and world.etcd.scratch_open == 0


def _members(*ids: int) -> list[EtcdMember]:
    return [EtcdMember(f"{i:016x}", f"cp-{n}", (), (f"https://10.0.0.{n}:2379",), healthy=True, leader=n == 1)
            for n, i in enumerate(ids, start=1)]


def _restored(world: SnapshotWorld, run_id: int, record_id: int, before: list[str], after: list[EtcdMember]) -> None:
    """What services.rollback records after a restore: the restored snapshot's ids and the new ones."""
    world.etcd.etcd_members = after
    with world.app.unit_of_work() as uow:
        record_event(world.app, uow, RESTORED, cluster="prod", run_id=run_id,
                     data={"snapshot": record_id, "member_ids": sorted(m.id for m in after),
                           "from_member_ids": before})
        uow.commit()


def test_rehearse_follows_the_restores_that_gave_the_etcd_new_member_ids(world: SnapshotWorld) -> None:
    older = _snapshot(world)
    newer = snapshots.create_snapshot(world.app, cluster="prod").record
    first = list(older.etcd_status["member_ids"])
    # a rollback to the newer one (run 7), then to the older one (run 9): new ids each time
    _restored(world, 7, newer.id, first, _members(0x21, 0x22, 0x23))
    taken_between = snapshots.create_snapshot(world.app, cluster="prod").record
    _restored(world, 9, older.id, first, _members(0x31, 0x32, 0x33))
    for record in (older, newer, taken_between):  # taken_between's generation was abandoned: still this etcd
        result = rehearse(world.app, cluster="prod", snapshot_id=record.id)
        assert result.ok and "restored since by run" in result.checks[0].detail
        assert snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id, cluster="prod").membership.startswith(
            "same members (the same etcd, restored since by run")
    # the cluster named prod now runs another etcd, never restored by upgrader: every snapshot is refused
    world.etcd.etcd_members = _members(0x41, 0x42, 0x43)
    for record in (older, taken_between):
        with pytest.raises(errors.IntegrityError, match="a snapshot of another cluster, refused") as e:
            rehearse(world.app, cluster="prod", snapshot_id=record.id)
        assert e.value.exit_code == 8
    assert world.etcd.scratches == [Path(r.path) for r in (older, newer, taken_between)]


def test_lineage_joins_only_restores_that_touch_it(world: SnapshotWorld) -> None:
    def event(n: int, snapshot: int, before: list[str], after: list[str]) -> EventRecord:
        return EventRecord(n, datetime(2026, 1, 1, tzinfo=UTC), "prod", 100 + n, "a", "h", "", RESTORED,
                           {"snapshot": snapshot, "from_member_ids": before, "member_ids": after})

    snap = replace(_snapshot(world), etcd_status={"member_ids": ["b"]})
    found = lineage(snap, [event(1, 10, ["a"], ["b"]), event(2, 10, ["a"], ["c"]), event(3, 50, ["x"], ["y"]),
                           event(4, snap.id, ["z"], ["d"])])
    assert found.member_ids == {"a", "b", "c", "d", "z"} and found.restored_by == (101, 102, 104)
