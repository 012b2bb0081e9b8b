"""The snapshot use cases where they meet failure and concurrency: prune under the cluster's lease and
in the safe order, artefact reads that fail for other reasons than a missing file, odd file names, an
after-check that cannot be made, and which endpoint a member is saved through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.snapshot_world import SnapshotWorld
from upgrader import errors
from upgrader.domain.records import SnapshotState
from upgrader.domain.snapshots import RetentionPolicy
from upgrader.etcd.store import DirectorySnapshotStore
from upgrader.fakes import FakeEtcdTool, InMemoryRepository
from upgrader.ports import CommandResult, EtcdMember
from upgrader.services import snapshot_checks, snapshots
from upgrader.services.etcd_access import EtcdSession


@pytest.fixture
def world(tmp_path: Path) -> SnapshotWorld:
    return SnapshotWorld(tmp_path)


def take(world: SnapshotWorld, n: int) -> list[int]:
    ids: list[int] = []
    for _ in range(n):
        ids.append(snapshots.create_snapshot(world.app, cluster="prod").record.id)
        world.clock.advance(3600)
    return ids


def complete_rows_have_files(world: SnapshotWorld) -> None:
    for s in world.snapshots("prod", deleted=False):
        assert Path(s.path).is_file(), f"snapshot {s.id} is complete but {s.path} is gone"


# --- prune: the lease, the order, leftovers -----------------------------------------------------

def test_prune_and_create_are_refused_while_another_holder_has_the_clusters_lease(world: SnapshotWorld) -> None:
    ids = take(world, 3)
    with world.ledger.unit_of_work() as uow:
        uow.repo.acquire_lock(cluster="prod", holder="run@ops-2:77", ttl_seconds=600, now=world.clock.now())
        uow.commit()
    with pytest.raises(errors.RunLockedError, match="locked by run@ops-2:77") as caught:
        snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert caught.value.exit_code == 7
    assert [s.id for s in world.snapshots("prod", deleted=False)] == ids
    dry = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1),
                                          dry_run=True)  # reads only: it needs no lease
    assert [s.id for s in dry.would_delete] == ids[:2] and [s.id for s in world.snapshots("prod")] == ids
    with pytest.raises(errors.RunLockedError):
        snapshots.create_snapshot(world.app, cluster="prod")
    assert len(world.snapshots("prod")) == 3
    with world.ledger.unit_of_work() as uow:
        lock = uow.repo.get_lock("prod")
        assert lock is not None and lock.holder == "run@ops-2:77"  # not taken over, not released


def test_a_run_that_holds_the_lease_takes_its_snapshot_without_taking_it_again(world: SnapshotWorld) -> None:
    with world.ledger.unit_of_work() as uow:
        uow.repo.acquire_lock(cluster="prod", holder="run@ops-1:12", ttl_seconds=600, now=world.clock.now())
        uow.commit()
    record = snapshots.create_snapshot(world.app, cluster="prod", take_lease=False).record
    assert [s.id for s in world.snapshots("prod")] == [record.id]
    with world.ledger.unit_of_work() as uow:
        lock = uow.repo.get_lock("prod")
        assert lock is not None and lock.holder == "run@ops-1:12"  # the run's lease, untouched


def test_prune_holds_the_lease_while_it_works_and_releases_it(world: SnapshotWorld,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    take(world, 3)
    seen: list[Any] = []
    real = InMemoryRepository.mark_snapshot_deleted

    def spy(self: InMemoryRepository, snapshot_id: int) -> Any:
        seen.append(self.get_lock("prod"))
        return real(self, snapshot_id)

    monkeypatch.setattr(InMemoryRepository, "mark_snapshot_deleted", spy)
    snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert seen and all(lock is not None and lock.holder.startswith("snapshot-prune@ops-1:") for lock in seen)
    with world.ledger.unit_of_work() as uow:
        assert uow.repo.get_lock("prod") is None


def test_a_ledger_failure_during_prune_never_leaves_a_complete_row_without_its_file(
        world: SnapshotWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    take(world, 3)

    def busy(self: InMemoryRepository, snapshot_id: int) -> Any:
        raise errors.LedgerBusyError("the ledger stayed busy")

    monkeypatch.setattr(InMemoryRepository, "mark_snapshot_deleted", busy)
    with pytest.raises(errors.LedgerBusyError):
        snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    complete_rows_have_files(world)
    assert len(world.snapshots("prod", deleted=False)) == 3
    with world.ledger.unit_of_work() as uow:
        assert uow.repo.get_lock("prod") is None  # released on the way out


def test_files_that_cannot_be_removed_are_reported_and_the_next_prune_removes_them(
        world: SnapshotWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = take(world, 3)
    real = DirectorySnapshotStore.discard

    def refuse(self: DirectorySnapshotStore, directory: Path) -> None:
        raise errors.SnapshotStoreError(f"snapshot store {self.root}: cannot remove {directory}: permission denied")

    monkeypatch.setattr(DirectorySnapshotStore, "discard", refuse)
    result = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert [r.id for r in result.deleted] == [ids[0], ids[1]]
    assert sorted(result.not_removed) == [ids[0], ids[1]] and "permission denied" in result.not_removed[ids[0]]
    gone = {s.id: s for s in world.snapshots("prod") if s.status is SnapshotState.DELETED}
    assert sorted(gone) == [ids[0], ids[1]] and all(Path(s.path).exists() for s in gone.values())
    complete_rows_have_files(world)
    monkeypatch.setattr(DirectorySnapshotStore, "discard", real)
    again = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert again.deleted == [] and again.not_removed == {}
    assert not any(Path(s.path).parent.exists() for s in gone.values())


def test_the_newest_known_good_snapshot_is_protected_only_while_its_file_is_there(world: SnapshotWorld) -> None:
    ids = take(world, 2)  # known-good
    world.set_ready("cp-2", False)
    ids += take(world, 2)  # not known-good
    Path(world.snapshots("prod")[1].path).unlink()  # the newest known-good one lost its etcd file
    result = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert result.decision.keep == {ids[3]: ("last",), ids[0]: ("newest-known-good",)}
    assert sorted(r.id for r in result.deleted) == [ids[1], ids[2]]
    complete_rows_have_files(world)


def test_a_store_that_is_not_there_refuses_the_prune_instead_of_losing_the_known_good_one(
        world: SnapshotWorld) -> None:
    ids = take(world, 1)  # known-good
    world.set_ready("cp-2", False)
    ids += take(world, 2)  # not known-good
    root = world.store
    root.rename(root.with_name("store-unmounted"))  # an NFS store that is not mounted right now
    with pytest.raises(errors.SnapshotStoreError, match="not there or not readable") as refused:
        snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert refused.value.exit_code == 2
    root.with_name("store-unmounted").rename(root)
    assert [s.id for s in world.snapshots("prod")] == ids  # nothing marked deleted
    result = snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(keep_last=1))
    assert result.decision.keep == {ids[2]: ("last",), ids[0]: ("newest-known-good",)}
    assert Path(world.snapshots("prod")[0].path).exists()


def test_a_failed_kubeadm_backup_removal_exits_2_not_1(world: SnapshotWorld) -> None:
    node = world.nodes["cp-1"]
    for name in ("kubeadm-backup-etcd-2026-11-01-10-00-00", "kubeadm-backup-etcd-2026-11-20-10-00-00"):
        node.files[f"/etc/kubernetes/tmp/{name}/member/snap/db"] = (b"old", 0o644)
    node.handlers["rm"] = lambda argv: CommandResult(1, "", "rm: cannot remove: Permission denied\n")
    with pytest.raises(errors.UpgraderError, match="removing kubeadm backups failed") as caught:
        snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(), kubeadm_backups=True)
    assert caught.value.exit_code == 2


# --- create: the after-check, artefact reads, names -------------------------------------------

def test_an_after_check_that_cannot_be_made_keeps_the_snapshot_as_not_known_good(world: SnapshotWorld) -> None:
    real_save = world.etcd.save

    def save_then_lose_the_api(**kwargs: Any) -> None:
        real_save(**kwargs)
        world.api._unreachable = "connection refused"

    world.etcd.save = save_then_lose_the_api  # type: ignore[method-assign]
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    assert record.known_good is False
    assert "after: API unreachable: connection refused" in (record.known_good_reason or "")
    assert Path(record.path).is_file() and [s.id for s in world.snapshots("prod")] == [record.id]


def test_an_after_check_whose_etcd_is_gone_keeps_the_snapshot_as_not_known_good(world: SnapshotWorld) -> None:
    real_save = world.etcd.save

    def save_then_lose_etcd(**kwargs: Any) -> None:
        real_save(**kwargs)
        world.etcd.unreachable = "context deadline exceeded"

    world.etcd.save = save_then_lose_etcd  # type: ignore[method-assign]
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    assert not record.known_good
    assert "after: etcd unreachable: context deadline exceeded" in (record.known_good_reason or "")


def _refuse_reading(world: SnapshotWorld, node: str, path: str, error: errors.TransportError) -> None:
    transport = world.nodes[node]
    real = transport.read_file

    def read_file(p: str) -> bytes:
        if p == path:
            raise error
        return real(p)

    transport.read_file = read_file  # type: ignore[method-assign,assignment]


@pytest.mark.parametrize("why", ["Permission denied", "sudo: a password is required"])
def test_an_artefact_that_cannot_be_read_fails_the_create_with_nothing_recorded(world: SnapshotWorld,
                                                                                why: str) -> None:
    _refuse_reading(world, "cp-2", "/var/lib/kubelet/config.yaml",
                    errors.TransportError(f"cannot read /var/lib/kubelet/config.yaml: {why}"))
    with pytest.raises(errors.NodeFileError) as caught:
        snapshots.create_snapshot(world.app, cluster="prod")
    assert caught.value.exit_code == 2 and "\n" not in caught.value.message
    assert caught.value.message.startswith("cp-2: cannot read /var/lib/kubelet/config.yaml for the snapshot: ")
    assert why in caught.value.message and "nothing was recorded" in caught.value.message
    assert world.snapshots() == [] and world.files() == []


def test_only_a_missing_artefact_is_skipped_never_a_message_that_looks_like_one(world: SnapshotWorld) -> None:
    del world.nodes["cp-1"].files["/etc/apt/sources.list.d/kubernetes.list"]  # FileMissingError, every transport
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    repo = {(a.node, a.node_path) for a in record.artefacts if a.kind == "repo-config"}
    assert repo == {(node, "/etc/apt/sources.list.d/kubernetes.list") for node in ("cp-2", "cp-3")}
    # a message is not a verdict: the node's language may be any (ssh carries the operator's LANG)
    _refuse_reading(world, "cp-2", "/etc/apt/sources.list.d/kubernetes.list",
                    errors.TransportError("cp-2: cannot read /etc/apt/sources.list.d/kubernetes.list: "
                                          "cat: /etc/apt/sources.list.d/kubernetes.list: No such file or directory"))
    with pytest.raises(errors.NodeFileError):
        snapshots.create_snapshot(world.app, cluster="prod")


def test_a_manifest_with_an_odd_name_is_kept_under_a_safe_name(world: SnapshotWorld) -> None:
    files = world.nodes["cp-1"].files
    files["/etc/kubernetes/manifests/etcd (copy).yaml"] = files["/etc/kubernetes/manifests/etcd.yaml"]
    files["/etc/kubernetes/manifests/etcd_(copy).yaml"] = (b"kind: Pod\n", 0o644)
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    odd = {a.node_path: a for a in record.artefacts if a.node == "cp-1" and "copy" in a.node_path}
    assert set(odd) == {"/etc/kubernetes/manifests/etcd (copy).yaml", "/etc/kubernetes/manifests/etcd_(copy).yaml"}
    stored = sorted(Path(a.stored_path).name for a in odd.values())
    assert stored == ["etc_kubernetes_manifests_etcd__copy_.yaml", "etc_kubernetes_manifests_etcd__copy_.yaml-2"]
    assert all(Path(a.stored_path).is_file() for a in odd.values())
    assert snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id).record.id == record.id


def test_node_transports_get_the_inventory_just_read(world: SnapshotWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from upgrader.services.wiring import AppContext

    given: list[Any] = []
    real = AppContext.transport

    def spy(self: AppContext, cluster: Any, node: str, inventory: Any = None) -> Any:
        given.append((node, inventory))
        return real(self, cluster, node, inventory=inventory)

    monkeypatch.setattr(AppContext, "transport", spy)
    world.inventory["nodes"][0]["addresses"] = {"InternalIP": "10.9.9.1"}
    world.api._inventory = world.inventory
    snapshots.create_snapshot(world.app, cluster="prod")
    snapshot_checks.prune_snapshots(world.app, cluster="prod", policy=RetentionPolicy(), kubeadm_backups=True)
    assert {n for n, _ in given} == {"cp-1", "cp-2", "cp-3"} and len(given) == 6
    assert all(inv is not None and inv["nodes"][0].get("addresses") == {"InternalIP": "10.9.9.1"} for _, inv in given)


# --- verify ---------------------------------------------------------------------------------------

def test_verify_of_a_recorded_snapshot_whose_file_is_gone_exits_8(world: SnapshotWorld) -> None:
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    Path(record.path).unlink()
    with pytest.raises(errors.IntegrityError) as caught:
        snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id)
    assert caught.value.exit_code == 8 and f"{record.path} is missing" in caught.value.message


def test_verify_says_when_the_live_etcd_lists_no_members(world: SnapshotWorld) -> None:
    record = snapshots.create_snapshot(world.app, cluster="prod").record
    world.etcd.etcd_members = []
    result = snapshot_checks.verify_snapshot(world.app, snapshot_id=record.id, cluster="prod")
    assert result.membership == "not checked: the etcd of prod listed no members"


# --- which endpoint a member is saved through ------------------------------------------------------

def member(i: int, **extra: Any) -> EtcdMember:
    return EtcdMember(id=f"{i:016x}", name=f"etcd-{i}", peer_urls=(f"https://10.0.9.{i}:2380",),
                      client_urls=(f"https://10.0.9.{i}:2379",), healthy=True, leader=i == 1, **extra)


FORWARDED = ["https://127.0.0.1:40001", "https://127.0.0.1:40002", "https://127.0.0.1:40003"]


def test_an_external_member_is_saved_through_the_forwarded_endpoint_that_answered_as_it() -> None:
    session = EtcdSession(tool=FakeEtcdTool(), endpoints=list(FORWARDED), tls=None, external=True)
    assert snapshots.endpoint_of(session, member(2, endpoint=FORWARDED[1])) == FORWARDED[1]
    assert snapshots.endpoint_of(session, member(3, endpoint=FORWARDED[2])) == FORWARDED[2]


def test_a_member_no_endpoint_is_known_to_reach_is_refused_not_guessed() -> None:
    session = EtcdSession(tool=FakeEtcdTool(), endpoints=list(FORWARDED), tls=None, external=True)
    with pytest.raises(errors.PreflightError, match="cannot tell which of the etcd endpoints") as caught:
        snapshots.endpoint_of(session, member(2))
    assert caught.value.exit_code == 4
    one = EtcdSession(tool=FakeEtcdTool(), endpoints=[FORWARDED[0]], tls=None, external=True)
    assert snapshots.endpoint_of(one, member(2)) == FORWARDED[0]
    direct = EtcdSession(tool=FakeEtcdTool(), endpoints=["https://10.0.9.1:2379", "https://10.0.9.2:2379"],
                         tls=None, external=True)
    assert snapshots.endpoint_of(direct, member(2)) == "https://10.0.9.2:2379"


# --- the fakes keep the real rules -----------------------------------------------------------------

def test_the_fake_etcd_tool_refuses_a_file_whose_size_is_not_sectors_plus_trailer(tmp_path: Path) -> None:
    import hashlib

    body = b"fake-etcd-snapshot revision=1\n" + b"\0" * 100  # not a whole number of 512-byte sectors
    path = tmp_path / "odd.db"
    path.write_bytes(body + hashlib.sha256(body).digest())  # its trailer matches
    with pytest.raises(errors.IntegrityError, match="is not a database image plus its SHA-256 trailer"):
        FakeEtcdTool().status(path)


def test_the_local_transport_tells_a_missing_file_from_one_it_may_not_read(tmp_path: Path) -> None:
    import os

    from upgrader.nodes.local import LocalTransport
    from upgrader.ports import NodeLayout

    transport = LocalTransport(NodeLayout(tmp_path))
    with pytest.raises(errors.FileMissingError, match="No such file or directory"):
        transport.read_file("/etc/kubernetes/manifests/etcd.yaml")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "dir").mkdir()  # reading a directory fails, and not because it is missing
    with pytest.raises(errors.TransportError) as caught:
        transport.read_file("/etc/dir")
    assert not isinstance(caught.value, errors.FileMissingError), os.strerror(21)
