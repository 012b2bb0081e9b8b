"""The snapshot use cases on fakes (upgrader.fakes: FakeEtcdTool, FakeTransport, FakeClusterApi, the
in-memory ledger) with a real store directory: what is recorded, what is refused, what is left behind."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.snapshot_world import CERT, EXTERNAL_ETCD, SECRET, SnapshotWorld
from upgrader import errors
from upgrader.domain.records import SnapshotState
from upgrader.domain.snapshots import RetentionPolicy
from upgrader.etcd.store import DirectorySnapshotStore
from upgrader.fakes import FakeEtcdTool
from upgrader.ports import EtcdMember
from upgrader.services import snapshot_checks, snapshots


@pytest.fixture
def world(tmp_path: Path) -> SnapshotWorld:
    return SnapshotWorld(tmp_path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_records_a_verified_snapshot_with_its_artefacts(world: SnapshotWorld) -> None:
    result = snapshots.create_snapshot(world.app, cluster="prod", label="before-v1.31")
    record = result.record
    etcd_file = Path(record.path)
    assert etcd_file.name == "etcd.db" and etcd_file.parent.parent == world.store / "prod"
    assert record.sha256 == hashlib.sha256(etcd_file.read_bytes()).hexdigest()
    assert record.size == etcd_file.stat().st_size and record.size % 512 == 32
    assert record.etcd_status["revision"] == 4242 and record.etcd_status["member_ids"] == [
        "0000000000000001", "0000000000000002", "0000000000000003"]
    # a follower, never the leader (cp-1), while one is healthy; saved from that member's own endpoint
    assert record.source_member == "cp-2" and world.etcd.saved[0][0] == "https://10.0.0.2:2379"
    assert record.known_good and record.known_good_reason.startswith("healthy before and after")
    assert record.label == "before-v1.31" and record.created_by == "alice" and not record.external
    kinds = sorted((a.node, a.kind) for a in record.artefacts)
    assert kinds.count(("cp-1", "manifest")) == 4 and ("api", "kubeadm-config") in kinds
    for node in ("cp-1", "cp-2", "cp-3"):
        for kind in ("kubelet-config", "kubelet-flags", "repo-config", "packages"):
            assert (node, kind) in kinds
    assert not any(a.node == "w-1" for a in record.artefacts)  # control-plane nodes only
    assert not any("pki" in a.node_path for a in record.artefacts)  # certificates are never captured
    for artefact in record.artefacts:
        data = Path(artefact.stored_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == artefact.sha256 and len(data) == artefact.size
    versions = record.versions
    assert versions["kubernetes_version"] == "v1.30.6" and versions["etcd_image"] == ["3.5.15-0"]
    assert versions["components"]["kube-apiserver"] == {"cp-1": "v1.30.6", "cp-2": "v1.30.6", "cp-3": "v1.30.6"}
    assert versions["kubelets"]["w-1"] == "v1.30.6"
    assert versions["packages"]["cp-2"] == {"kubeadm": "1.30.6-1.1", "kubelet": "1.30.6-1.1", "kubectl": "1.30.6-1.1"}
    assert world.events()[-1][0] == "snapshot-created"
    assert snapshots.show_snapshot(world.app, snapshot_id=record.id) == record


def test_snapshot_files_are_never_readable_by_group_or_others(world: SnapshotWorld) -> None:
    snapshots.create_snapshot(world.app, cluster="prod")
    assert mode(world.store) == 0o700 and mode(world.store / "prod") == 0o700
    for path in world.store.rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert not any(p.name.endswith((".partial", ".tmp")) for p in world.files())


def test_an_unhealthy_cluster_gets_a_snapshot_that_is_not_known_good(world: SnapshotWorld) -> None:
    world.set_ready("cp-3", False)
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    assert not record.known_good
    assert "before: control-plane node(s) not Ready: cp-3" in record.known_good_reason


def test_an_apiserver_that_is_not_ready_makes_a_snapshot_that_is_not_known_good(world: SnapshotWorld) -> None:
    world.api.readyz_answer = (500, "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n")
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    assert not record.known_good
    assert "before: /readyz answered 500: [-]etcd failed: reason withheld" in record.known_good_reason


def test_the_leader_is_used_when_it_is_the_only_healthy_member(world: SnapshotWorld) -> None:
    world.etcd.etcd_members = [m if m.leader else EtcdMember(m.id, m.name, m.peer_urls, m.client_urls, healthy=False,
                                                             error="connection refused")
                               for m in world.etcd.etcd_members]
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    assert record.source_member == "cp-1" and not record.known_good
    assert "etcd member(s) unhealthy: cp-2 (connection refused), cp-3 (connection refused)" in record.known_good_reason


def nothing_left(world: SnapshotWorld) -> None:
    assert world.snapshots() == []
    assert world.files() == []
    assert not [k for k, _ in world.events() if k.startswith("snapshot")]


def test_no_healthy_member_is_refused_before_anything_is_written(world: SnapshotWorld) -> None:
    world.etcd.etcd_members = [EtcdMember(m.id, m.name, m.peer_urls, m.client_urls, healthy=False, error="down")
                               for m in world.etcd.etcd_members]
    with pytest.raises(errors.PreflightError, match="no healthy etcd member") as caught:
        snapshots.create_snapshot(world.app, cluster="prod")
    assert caught.value.exit_code == 4
    nothing_left(world)


def test_an_unreachable_api_is_refused_with_nothing_written(world: SnapshotWorld) -> None:
    world.api._unreachable = "cluster prod: cannot reach the API at https://10.0.0.1:6443"
    with pytest.raises(errors.ClusterUnreachableError, match="cannot reach the API") as caught:
        snapshots.create_snapshot(world.app, cluster="prod")
    assert caught.value.exit_code == 2 and "\n" not in caught.value.message
    nothing_left(world)
    assert not world.store.exists()


def test_an_etcd_tool_older_than_the_cluster_is_refused(world: SnapshotWorld) -> None:
    world.etcd.tool_version = "3.4.23"
    with pytest.raises(errors.EtcdToolError, match=r"etcdctl 3.4.23 is older than the cluster's etcd 3.5.16: "
                       r"install etcdctl 3.5 or newer") as caught:
        snapshots.create_snapshot(world.app, cluster="prod")
    assert caught.value.exit_code == 2
    nothing_left(world)


def test_a_store_that_is_not_writable_is_refused(world: SnapshotWorld) -> None:
    world.store.parent.mkdir(parents=True, exist_ok=True)
    world.store.write_text("a file where the store should be")
    with pytest.raises(errors.SnapshotStoreError, match="is not writable: a file is in the way") as caught:
        snapshots.create_snapshot(world.app, cluster="prod")
    assert caught.value.exit_code == 2
    assert world.snapshots() == [] and world.store.read_text() == "a file where the store should be"


def test_a_store_without_room_for_the_database_is_refused_up_front(world: SnapshotWorld) -> None:
    world.etcd.etcd_members = [EtcdMember(m.id, m.name, m.peer_urls, m.client_urls, healthy=True, leader=m.leader,
                                          db_size=1 << 60, version="3.5.16") for m in world.etcd.etcd_members]
    with pytest.raises(errors.SnapshotStoreError, match="bytes free; the etcd database of cp-2 is") as caught:
        snapshots.create_snapshot(world.app, cluster="prod")
    assert caught.value.exit_code == 2
    nothing_left(world)


class CorruptingEtcd(FakeEtcdTool):
    def save(self, **kwargs):  # type: ignore[no-untyped-def]
        super().save(**kwargs)
        self.corrupt(kwargs["path"])


def test_a_corrupt_save_is_never_renamed_nor_recorded(world: SnapshotWorld) -> None:
    corrupting = CorruptingEtcd()
    world.etcd = corrupting
    with pytest.raises(errors.IntegrityError, match="trailer does not match") as caught:
        snapshots.create_snapshot(world.app, cluster="prod")
    assert caught.value.exit_code == 8
    nothing_left(world)


def test_an_unreachable_node_stops_the_snapshot_and_leaves_nothing(world: SnapshotWorld) -> None:
    world.nodes["cp-3"].unreachable = True
    with pytest.raises(errors.NodeUnreachableError):
        snapshots.create_snapshot(world.app, cluster="prod")
    nothing_left(world)


def test_a_bad_label_is_refused_before_anything_is_read(world: SnapshotWorld) -> None:
    with pytest.raises(errors.InvalidNameError, match="invalid snapshot label"):
        snapshots.create_snapshot(world.app, cluster="prod", label="../../etc")
    assert world.api.calls == 0
    nothing_left(world)


def test_external_etcd_is_recorded_as_external(world: SnapshotWorld) -> None:
    world.api.configmaps[("kube-system", "kubeadm-config")] = {"ClusterConfiguration": EXTERNAL_ETCD}
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    assert record.external is True and record.versions["kubernetes_version"] == "v1.30.6"


def test_secrets_and_certificates_stay_out_of_the_ledger_and_the_result(world: SnapshotWorld) -> None:
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    assert SECRET.encode() in Path(record.path).read_bytes()  # it is in the snapshot: that is the point
    ledger_text = json.dumps([str(s) for s in world.snapshots()] + [str(e) for e in world.events()])
    assert SECRET not in ledger_text and "BEGIN CERTIFICATE" not in ledger_text
    assert CERT.encode() not in b"".join(p.read_bytes() for p in world.files() if p.name != "etcd.db")


# --- verify ------------------------------------------------------------------------------------

def test_verify_passes_on_an_intact_snapshot(world: SnapshotWorld) -> None:
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    result = snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id)
    assert result.record == record and len(result.checked) == 2 + len(record.artefacts)
    assert result.membership.startswith("not checked")


def test_verify_on_a_host_without_etcd_tools_checks_the_trailer_instead(world: SnapshotWorld) -> None:
    """A cluster set to `--etcd-tools node` is snapshotted from a host with no etcdctl; verify works there."""
    record = snapshots.create_snapshot(world.app, cluster="prod").record

    class NoTools:
        def status(self, path: Path) -> None:
            raise errors.EtcdToolError("etcdctl not found (etcdctl): install etcdctl or newer")

    world.app.etcd_tool_factory = lambda: NoTools()  # type: ignore[assignment,return-value]
    result = snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id)
    assert any(c.startswith("etcd trailer (status not re-read: etcdctl not found") for c in result.checked)
    data = bytearray(Path(record.path).read_bytes())
    data[len(data) // 2] ^= 1
    Path(record.path).write_bytes(bytes(data))
    with pytest.raises(errors.IntegrityError):
        snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id)


def test_verify_refuses_a_flipped_byte(world: SnapshotWorld) -> None:
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    FakeEtcdTool.corrupt(Path(record.path), offset=100)
    with pytest.raises(errors.IntegrityError, match=rf"snapshot {record.id} failed verification: etcd file: "
                       r".* has sha256 [0-9a-f]{64}, " + record.sha256 + " was recorded") as caught:
        snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id)
    assert caught.value.exit_code == 8 and "\n" not in caught.value.message


def test_verify_names_a_missing_file_and_a_changed_artefact_at_once(world: SnapshotWorld) -> None:
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    Path(record.path).unlink()
    artefact = record.artefacts[0]
    Path(artefact.stored_path).write_bytes(b"changed")
    with pytest.raises(errors.IntegrityError) as caught:
        snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id)
    assert f"{record.path} is missing" in caught.value.message
    assert f"artefact {artefact.node} {artefact.node_path}: " in caught.value.message


def test_verify_compares_the_tools_status_with_the_recorded_one(world: SnapshotWorld) -> None:
    from dataclasses import replace

    record = snapshots.create_snapshot(world.app, cluster="prod").record
    with world.ledger.unit_of_work() as uow:  # the ledger says revision 4000: the file says 4242
        uow.repo._s.snapshots[record.id] = replace(record, etcd_status={**record.etcd_status, "revision": 4000})
        uow.commit()
    with pytest.raises(errors.IntegrityError, match="etcd revision is 4242, 4000 was recorded"):
        snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id)


def test_verify_refuses_a_snapshot_of_another_cluster(world: SnapshotWorld) -> None:
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    with pytest.raises(errors.IntegrityError, match=f"snapshot {record.id} is a snapshot of cluster prod, not of dev"
                       ) as caught:
        snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id, cluster="dev")
    assert caught.value.exit_code == 8
    assert snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id, cluster="prod").membership == (
        "same members")
    # the cluster named prod now runs another etcd: none of the recorded members is in it
    world.etcd.etcd_members = [EtcdMember(f"{i:016x}", f"cp-{i}", (), (f"https://10.9.0.{i}:2379",), healthy=True,
                                          leader=i == 7) for i in (7, 8, 9)]
    with pytest.raises(errors.IntegrityError, match="a snapshot of another cluster, refused"):
        snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id, cluster="prod")


def test_verify_of_an_unknown_id_is_not_found(world: SnapshotWorld) -> None:
    with pytest.raises(errors.SnapshotNotFoundError) as caught:
        snapshot_checks.verify_snapshot(world.app, snapshot_id=42)
    assert caught.value.exit_code == 2


# --- prune, pin --------------------------------------------------------------------------------

def take(world: SnapshotWorld, n: int, *, hours: float = 1) -> list[int]:
    ids = []
    for _ in range(n):
        ids.append(snapshots.create_snapshot(world.app, cluster="prod").record.id)
        world.clock.advance(hours * 3600)
    return ids


def test_prune_keeps_last_n_protects_pinned_and_newest_known_good(world: SnapshotWorld) -> None:
    ids = take(world, 3)
    world.set_ready("cp-2", False)  # the two newest are not known-good
    ids += take(world, 2)
    snapshots.set_pinned(world.app, snapshot_id=ids[0], pinned=True)
    dry = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1),
                                          dry_run=True)
    assert [r.id for r in dry.would_delete] == [ids[1], ids[3]] and dry.deleted == []
    assert len(world.snapshots("prod", deleted=False)) == 5
    result = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert [r.id for r in result.deleted] == [ids[1], ids[3]]
    assert result.decision.keep == {ids[4]: ("last",), ids[2]: ("newest-known-good",), ids[0]: ("pinned",)}
    for record in result.deleted:
        assert record.status is SnapshotState.DELETED and not Path(record.path).parent.exists()
    assert [d["snapshot"] for k, d in world.events() if k == "snapshot-deleted"] == [ids[1], ids[3]]
    again = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert again.deleted == []
    with pytest.raises(errors.IntegrityError, match="was deleted by prune"):
        snapshot_checks.verify_snapshot(world.app, snapshot_id=ids[1])


def test_prune_keeps_one_a_day(world: SnapshotWorld) -> None:
    ids = take(world, 6, hours=8)  # 00:00, 08:00, 16:00 on two days
    result = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_daily=2))
    assert set(result.decision.keep) == {ids[2], ids[5]}
    assert {r.id for r in result.deleted} == {ids[0], ids[1], ids[3], ids[4]}


def test_prune_spares_a_snapshot_an_unfinished_run_holds(world: SnapshotWorld) -> None:
    from dataclasses import replace

    from upgrader.domain.runs import RunId, RunStatus

    ids = take(world, 2)
    with world.ledger.unit_of_work() as uow:  # the first snapshot belongs to run 7, still running
        held = uow.repo.get_snapshot(ids[0])
        uow.repo._s.snapshots[ids[0]] = replace(held, run_id=RunId(7), known_good=False)
        uow.commit()
    world.ledger.set_run_status(7, RunStatus.RUNNING)
    result = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert result.deleted == [] and result.decision.keep[ids[0]] == ("in-use",)


def test_prune_without_a_policy_is_refused(world: SnapshotWorld) -> None:
    take(world, 2)
    with pytest.raises(errors.UsageError, match="give a retention policy"):
        snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy())
    assert len(world.snapshots("prod", deleted=False)) == 2


def test_prune_kubeadm_backups_keeps_the_newest_of_each_kind(world: SnapshotWorld) -> None:
    node = world.nodes["cp-1"]
    for name in ("kubeadm-backup-etcd-2026-11-01-10-00-00", "kubeadm-backup-etcd-2026-11-20-10-00-00",
                 "kubeadm-backup-manifests-2026-11-01-10-00-00", "kubeadm-backup-manifests-2026-11-20-10-00-00"):
        node.files[f"/etc/kubernetes/tmp/{name}/member/snap/db"] = b"old"
    dry = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(), dry_run=True,
                                          kubeadm_backups=True)
    assert dry.kubeadm_backups["cp-1"] == ["kubeadm-backup-etcd-2026-11-01-10-00-00",
                                           "kubeadm-backup-manifests-2026-11-01-10-00-00"]
    assert len([p for p in node.files if p.startswith("/etc/kubernetes/tmp/")]) == 4
    snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(), kubeadm_backups=True)
    assert sorted(p.split("/")[4] for p in node.files if p.startswith("/etc/kubernetes/tmp/")) == [
        "kubeadm-backup-etcd-2026-11-20-10-00-00", "kubeadm-backup-manifests-2026-11-20-10-00-00"]
    assert ("kubeadm-backups-pruned", {"node": "cp-1", "removed": dry.kubeadm_backups["cp-1"]}) in world.events()
    assert world.nodes["cp-2"].ran[-1][0] == "ls"  # nothing to remove there: no rm


def test_pin_and_unpin_are_events_and_a_deleted_snapshot_cannot_be_pinned(world: SnapshotWorld) -> None:
    ids = take(world, 2)
    record, changed = snapshots.set_pinned(world.app, snapshot_id=ids[0], pinned=True)
    assert record.pinned and changed
    assert snapshots.set_pinned(world.app, snapshot_id=ids[0], pinned=True)[1] is False
    assert snapshots.set_pinned(world.app, snapshot_id=ids[0], pinned=False)[0].pinned is False
    assert [k for k, _ in world.events() if k.startswith("snapshot-p") or k.startswith("snapshot-u")] == [
        "snapshot-pinned", "snapshot-unpinned"]
    world.clock.advance(timedelta(days=1).total_seconds())
    world.set_ready("cp-1", False)
    snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    with pytest.raises(errors.UsageError, match="was deleted"):
        snapshots.set_pinned(world.app, snapshot_id=ids[0], pinned=True)


def test_store_put_copies_a_file_in_privately(tmp_path: Path) -> None:
    source = tmp_path / "given.db"
    source.write_bytes(b"x" * 1000)
    store = DirectorySnapshotStore(tmp_path / "s")
    stored = store.put(cluster="prod", source=source)
    assert store.verify(stored) and mode(stored.path) == 0o600 and stored.size == 1000
    assert stored.sha256 == hashlib.sha256(b"x" * 1000).hexdigest()
    assert store.free_bytes() > 0
