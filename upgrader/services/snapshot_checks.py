"""`snapshot verify` and `snapshot prune`: is a recorded snapshot still what was recorded, and which
snapshots a retention policy lets go.

verify checks, and reports every problem at once (IntegrityError, exit 8): the etcd file's size and
sha256, the snapshot's own integrity as the etcd tool sees it (its checksum trailer; hash and
revision equal to what was recorded), and each artefact's sha256. With ``--cluster`` it also
refuses a snapshot of another cluster: another name in the ledger, or, when that cluster's etcd
answers, a member list sharing no member with the one recorded at create time, nor with the ids
the cluster's etcd got from the restores upgrader made since (services.etcd_lineage: a restore with a
new cluster token gives new member ids; a different etcd cluster has others).

prune works under the cluster's lease (a run or a create cannot overlap it). It first marks the
doomed rows deleted, each in one transaction with its event, and only then removes their files: a
crash in between leaves files of deleted rows (removed by the next prune, which retries every
deleted row's leftover directory), never a ``complete`` row without its file. A file that cannot
be removed is reported. The newest known-good snapshot is protected only when its etcd file is
still there with its recorded size; otherwise the next known-good one with an intact file is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upgrader.domain.names import validate_name
from upgrader.domain.records import SnapshotRecord, SnapshotState
from upgrader.domain.snapshots import Candidate, RetentionDecision, RetentionPolicy, decide, kubeadm_backups_to_remove
from upgrader.errors import (
    EtcdToolError,
    IntegrityError,
    NodeFileError,
    SnapshotStoreError,
    UsageError,
)
from upgrader.ports import StoredSnapshot
from upgrader.services.audit import record_event
from upgrader.services.etcd_lineage import compare_members
from upgrader.services.snapshot_lease import cluster_lease
from upgrader.services.wiring import AppContext

KUBEADM_TMP = "/etc/kubernetes/tmp"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    record: SnapshotRecord
    checked: tuple[str, ...]  # what was checked and found right
    membership: str  # "same members", "not checked: ..."


def verify_snapshot(app: AppContext, *, snapshot_id: int, cluster: str | None = None) -> VerifyResult:
    with app.unit_of_work() as uow:
        record = uow.repo.get_snapshot(snapshot_id)
        cluster_record = uow.repo.get_cluster(validate_name(cluster)) if cluster is not None else None
    if cluster is not None and record.cluster != cluster:
        raise IntegrityError(f"snapshot {snapshot_id} is a snapshot of cluster {record.cluster}, not of {cluster}: "
                             "refused")
    if record.status is SnapshotState.DELETED:
        raise IntegrityError(f"snapshot {snapshot_id} was deleted by prune at "
                             f"{record.deleted_at:%Y-%m-%dT%H:%M:%SZ}; its files are gone")
    problems: list[str] = []
    checked: list[str] = []
    store = app.snapshot_store(_store_root(record))
    wrong = store.check(StoredSnapshot(Path(record.path), record.size, record.sha256))
    if wrong is None:
        checked.append(f"etcd file sha256 {record.sha256}")
        problems += _own_integrity(app, record, checked)
    else:
        problems.append(f"etcd file: {wrong}")
    for artefact in record.artefacts:
        wrong = store.check(StoredSnapshot(Path(artefact.stored_path), artefact.size, artefact.sha256))
        if wrong is None:
            checked.append(f"{artefact.node} {artefact.node_path}")
        else:
            problems.append(f"artefact {artefact.node} {artefact.node_path}: {wrong}")
    membership = "not checked (give --cluster to compare with the live etcd)"
    if cluster_record is not None:
        membership = _compare_members(app, record, cluster_record)
    if problems:
        raise IntegrityError(f"snapshot {snapshot_id} failed verification: " + "; ".join(problems))
    return VerifyResult(record, tuple(checked), membership)


def _own_integrity(app: AppContext, record: SnapshotRecord, checked: list[str]) -> list[str]:
    try:
        status = app.etcd_tool().status(Path(record.path))
    except IntegrityError as e:
        return [f"etcd file: {e.message}"]
    except EtcdToolError as e:  # no etcd tools on this host (a cluster with --etcd-tools node)
        from upgrader.etcd.integrity import check_trailer

        try:
            check_trailer(Path(record.path))  # with the sha256 above, the file is byte for byte as recorded
        except IntegrityError as bad:
            return [f"etcd file: {bad.message}"]
        checked.append(f"etcd trailer (status not re-read: {e.message})")
        return []
    problems = []
    for key, value in (("hash", status.hash), ("revision", status.revision)):
        if record.etcd_status.get(key) != value:
            problems.append(f"etcd {key} is {value}, {record.etcd_status.get(key)} was recorded")
    if not problems:
        checked.append(f"etcd status hash {status.hash} revision {status.revision}")
    return problems


def _compare_members(app: AppContext, record: SnapshotRecord, cluster: Any) -> str:
    return compare_members(app, cluster, record)  # through the restores the cluster's etcd went through


def _store_root(record: SnapshotRecord) -> Path:
    """The store a snapshot was taken into: ROOT/CLUSTER/SNAPSHOT/etcd.db."""
    return Path(record.path).parent.parent.parent


@dataclass
class PruneResult:
    decision: RetentionDecision
    deleted: list[SnapshotRecord] = field(default_factory=list)
    would_delete: list[SnapshotRecord] = field(default_factory=list)
    kubeadm_backups: dict[str, list[str]] = field(default_factory=dict)  # node -> removed (or would be)
    not_removed: dict[int, str] = field(default_factory=dict)  # deleted snapshot id -> why its files stay


def prune_snapshots(app: AppContext, *, cluster: str, policy: RetentionPolicy, dry_run: bool = False,
                    kubeadm_backups: bool = False) -> PruneResult:
    validate_name(cluster)
    if policy.empty and not kubeadm_backups:
        raise UsageError("give a retention policy: --keep-last, --keep-daily and/or --keep-weekly "
                         "(an empty policy would delete every unprotected snapshot)")
    with app.unit_of_work() as uow:
        uow.repo.get_cluster(cluster)
    if dry_run:  # reads only: no lease, so a dry run works beside a run in progress
        return _prune(app, cluster, policy, dry_run=True, kubeadm_backups=kubeadm_backups)
    with cluster_lease(app, cluster, "prune"):
        return _prune(app, cluster, policy, dry_run=False, kubeadm_backups=kubeadm_backups)


def _prune(app: AppContext, cluster: str, policy: RetentionPolicy, *, dry_run: bool,
           kubeadm_backups: bool) -> PruneResult:
    with app.unit_of_work() as uow:
        cluster_record = uow.repo.get_cluster(cluster)
        everything = uow.repo.list_snapshots(cluster, include_deleted=True)
        in_use = uow.repo.snapshots_in_use(cluster)
    snapshots = [s for s in everything if s.status is not SnapshotState.DELETED]
    _stores_reachable(snapshots)
    by_id: dict[int, SnapshotRecord] = {s.id: s for s in snapshots}
    decision = (RetentionDecision(keep={s.id: ("no-policy",) for s in snapshots}) if policy.empty else
                decide([Candidate(s.id, s.created_at, s.known_good and _present(app, s), s.pinned, s.id in in_use)
                        for s in snapshots], policy))
    result = PruneResult(decision)
    if dry_run:
        result.would_delete = [by_id[i] for i in decision.delete]
    else:
        for snapshot_id in decision.delete:  # the rows first: a complete row never outlives its file
            snapshot = by_id[snapshot_id]
            with app.unit_of_work() as uow:
                deleted = uow.repo.mark_snapshot_deleted(snapshot_id)
                record_event(app, uow, "snapshot-deleted", cluster=cluster,
                             data={"snapshot": snapshot_id, "path": snapshot.path, "policy": _policy_dict(policy)})
                uow.commit()
            result.deleted.append(deleted)
        already = [s for s in everything if s.status is SnapshotState.DELETED]
        for snapshot in [*result.deleted, *already]:  # then the files, and what an earlier prune left
            why = _remove_files(app, snapshot)
            if why is not None:
                result.not_removed[snapshot.id] = why
    if kubeadm_backups:
        result.kubeadm_backups = _prune_kubeadm_backups(app, cluster_record, dry_run=dry_run)
    return result


def _stores_reachable(snapshots: list[SnapshotRecord]) -> None:
    """Every store the snapshots live in is there and readable, or prune decides nothing: an unmounted
    store would make every file look missing, and the newest known-good would lose its protection."""
    for root in sorted({_store_root(s) for s in snapshots}):
        if not (root.is_dir() and os.access(root, os.R_OK | os.X_OK)):
            raise SnapshotStoreError(f"snapshot store {root} is not there or not readable (unmounted?): "
                                     "prune refused, nothing deleted")


def _present(app: AppContext, snapshot: SnapshotRecord) -> bool:
    """The etcd file is there with its recorded size (cheap: no checksum)."""
    return app.snapshot_store(_store_root(snapshot)).present(
        StoredSnapshot(Path(snapshot.path), snapshot.size, snapshot.sha256))


def _remove_files(app: AppContext, snapshot: SnapshotRecord) -> str | None:
    """Remove a deleted snapshot's directory (nothing to do when it is gone); why not, when it cannot be."""
    try:
        app.snapshot_store(_store_root(snapshot)).discard(Path(snapshot.path).parent)
    except (SnapshotStoreError, ValueError) as e:
        return str(e)
    return None


def _policy_dict(policy: RetentionPolicy) -> dict[str, int]:
    return {"keep_last": policy.keep_last, "keep_daily": policy.keep_daily, "keep_weekly": policy.keep_weekly}


def _prune_kubeadm_backups(app: AppContext, cluster: Any, *, dry_run: bool) -> dict[str, list[str]]:
    """On each control-plane node, all but the newest of kubeadm's etcd and manifest backups."""
    inventory = app.cluster_api(cluster).observe_inventory()
    removed: dict[str, list[str]] = {}
    for node in sorted(str(n["name"]) for n in inventory.get("nodes", []) if n.get("control_plane")):
        transport = app.transport(cluster, node, inventory=inventory)
        listing = transport.run(["ls", "-1", KUBEADM_TMP], 30.0)
        if not listing.ok:
            removed[node] = []
            continue
        doomed = kubeadm_backups_to_remove(listing.stdout.split())
        removed[node] = doomed
        if dry_run or not doomed:
            continue
        done = transport.run(["rm", "-rf", "--", *(f"{KUBEADM_TMP}/{name}" for name in doomed)], 120.0)
        if not done.ok:
            raise NodeFileError(f"{node}: removing kubeadm backups failed: {done.stderr.strip()[-200:]}")
        with app.unit_of_work() as uow:
            record_event(app, uow, "kubeadm-backups-pruned", cluster=cluster.name,
                         data={"node": node, "removed": doomed})
            uow.commit()
    return removed
