"""`upgrader snapshot`: take, list, show, verify, pin and unpin verified etcd + control-plane snapshots.

create, in order: the cluster's health (API, control-plane nodes Ready, etcd members healthy with one
leader); one healthy member chosen (a follower when there is one: streaming the whole database
loads the member it comes from, and the leader is busy enough); ``snapshot save`` to a temp name in
the store; the tool's own status of the file (IntegrityError when it is corrupt); sha256; rename;
the control-plane artefacts (services.snapshot_capture); the health again. ``known_good`` only when
both health checks passed, with the reason either way; an after-check that cannot be made (the API
went away right after the save) keeps the snapshot, not known-good, with that reason. The row and
its event are written in one transaction at the very end: anything that fails before leaves no row
and no file behind. All of it under the cluster's lease (services.snapshot_lease), so a prune or a
run cannot overlap it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from upgrader.domain.names import validate_name, validate_snapshot_label
from upgrader.domain.records import ClusterRecord, NewSnapshot, SnapshotRecord
from upgrader.domain.runs import RunId
from upgrader.errors import PreflightError, SnapshotStoreError, UpgraderError, UsageError
from upgrader.ports import EtcdMember, SnapshotStore
from upgrader.services import snapshot_capture
from upgrader.services.audit import record_event
from upgrader.services.etcd_access import EtcdSession, etcd_session
from upgrader.services.health import (
    HealthCheck,
    HealthReport,
    control_plane_checks,
    etcd_checks,
    observe_health,
    readyz_check,
)
from upgrader.services.snapshot_lease import cluster_lease
from upgrader.services.wiring import AppContext

ROOM = 1.2  # the store must have this many times the etcd database size free, plus SLACK bytes
SLACK = 1 << 20


@dataclass(frozen=True, slots=True)
class CreateResult:
    record: SnapshotRecord
    before: HealthReport
    after: HealthReport


def create_snapshot(app: AppContext, *, cluster: str, label: str | None = None,
                    store_dir: Path | None = None, take_lease: bool = True, run_id: int | None = None) -> CreateResult:
    """``take_lease=False`` only for a caller that already holds the cluster's lease (a run, ``run_id``)."""
    validate_name(cluster)
    if label is not None:
        validate_snapshot_label(label)
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    if not take_lease:
        return _create(app, record, label=label, store_dir=store_dir, run_id=run_id)
    with cluster_lease(app, cluster, "create"):
        return _create(app, record, label=label, store_dir=store_dir, run_id=run_id)


def _create(app: AppContext, record: ClusterRecord, *, label: str | None, store_dir: Path | None,
            run_id: int | None = None) -> CreateResult:
    cluster = record.name
    api = app.cluster_api(record)
    inventory = api.observe_inventory()  # an unreachable API stops here: nothing written yet
    ready = readyz_check(api.readyz())
    kubeadm_config = api.get_configmap("kube-system", "kubeadm-config")
    store = app.snapshot_store(store_dir)
    with etcd_session(app, record, inventory) as session:
        members = session.members()
        before = HealthReport((*control_plane_checks(inventory), ready, *etcd_checks(members)))
        member = choose_member(members)
        session.require(members)  # EtcdToolError (exit 2) when the tool is older than the members' etcd
        _check_room(store, member)
        created_at = app.clock.now()
        name = f"{created_at:%Y%m%dT%H%M%SZ}-{label or 'snapshot'}-{secrets.token_hex(3)}"
        directory = store.prepare(cluster=cluster, name=name)
        try:
            new, after = _take(app, record, session, store, directory, member=member, members=members,
                               inventory=inventory, kubeadm_config=kubeadm_config, before=before, label=label,
                               created_at=created_at)
            if run_id is not None:
                new = replace(new, run_id=RunId(run_id))
            with app.unit_of_work() as uow:
                saved = uow.repo.add_snapshot(new)
                record_event(app, uow, "snapshot-created", cluster=cluster,
                             run_id=run_id, data={"snapshot": saved.id, "path": saved.path, "sha256": saved.sha256,
                                   "known_good": saved.known_good, "label": label})
                uow.commit()
        except BaseException:
            store.discard(directory)
            raise
    return CreateResult(saved, before, after)


def _take(app: AppContext, cluster: ClusterRecord, session: EtcdSession, store: SnapshotStore, directory: Path, *,
          member: EtcdMember, members: list[EtcdMember], inventory: Mapping[str, Any],
          kubeadm_config: Mapping[str, str] | None, before: HealthReport, label: str | None,
          created_at: Any) -> tuple[NewSnapshot, HealthReport]:
    partial = store.partial_path(directory)
    try:
        session.tool.save(endpoint=endpoint_of(session, member), tls=session.tls, path=partial)
    except OSError as e:
        raise SnapshotStoreError(f"snapshot store {store.root}: cannot write the snapshot: {e.strerror}") from e
    status = session.tool.status(partial)  # IntegrityError when the file is corrupt: never renamed
    stored = store.finish(partial)
    captured = snapshot_capture.capture(app, cluster, inventory=inventory, kubeadm_config=kubeadm_config,
                                        store=store, directory=directory)
    after, inventory_after = _after(app, cluster, session)
    known_good = before.ok and after.ok
    reason = (f"healthy before and after: {after.summary()}" if known_good else
              "not known-good: " + "; ".join(f"{when}: {r.summary()}" for when, r in (("before", before),
                                                                                     ("after", after)) if not r.ok))
    new = NewSnapshot(
        cluster=cluster.name, created_at=created_at, created_by=app.actor.user, label=label,
        path=str(stored.path), size=stored.size, sha256=stored.sha256,
        etcd_status={"hash": status.hash, "revision": status.revision, "total_keys": status.total_keys,
                     "total_size": status.total_size, "version": status.version, "etcd_version": member.version,
                     "member_ids": sorted(m.id for m in members)},
        source_member=member.name or member.id,
        external=session.external or is_external(kubeadm_config),
        versions=version_set(inventory_after or inventory, kubeadm_config, captured.packages),
        artefacts=tuple(captured.artefacts), known_good=known_good, known_good_reason=reason)
    return new, after


def _after(app: AppContext, cluster: ClusterRecord, session: EtcdSession) -> tuple[HealthReport, dict[str, Any]]:
    """The health after the save; one that cannot be observed is a failed check, not a lost snapshot."""
    try:
        members = session.members()
    except UpgraderError as e:
        return HealthReport((HealthCheck("EtcdUnreachable", False, f"etcd unreachable: {e.message}"),)), {}
    try:
        return observe_health(app.cluster_api(cluster), members)
    except UpgraderError as e:
        return HealthReport((HealthCheck("ApiUnreachable", False, f"API unreachable: {e.message}"),)), {}


def choose_member(members: list[EtcdMember]) -> EtcdMember:
    """A healthy follower (by name), else the healthy leader; PreflightError (exit 4) when none is healthy."""
    healthy = sorted((m for m in members if m.healthy), key=lambda m: (bool(m.leader), m.name, m.id))
    if not healthy:
        raise PreflightError("no healthy etcd member to take a snapshot from: "
                                  + ", ".join(f"{m.name or m.id}: {m.error or 'unhealthy'}" for m in members))
    return healthy[0]


def endpoint_of(session: EtcdSession, member: EtcdMember) -> str:
    """The endpoint, reachable from here, that reaches exactly this member: the session's endpoint of its
    node, else the endpoint whose status answered with this member's id (a forwarded 127.0.0.1:PORT of an
    external etcd), else one of its client URLs the session has, else the session's only endpoint.
    PreflightError (exit 4) when none of those tells: a member's own client URL may not be reachable."""
    for endpoint, node in session.node_of_endpoint.items():
        if node == member.name:
            return endpoint
    if member.endpoint is not None:
        return member.endpoint
    for url in member.client_urls:
        if url in session.endpoints:
            return url
    if len(session.endpoints) == 1:
        return session.endpoints[0]
    raise PreflightError(f"cannot tell which of the etcd endpoints {', '.join(session.endpoints)} reaches member "
                         f"{member.name or member.id}: nothing was written")


def _check_room(store: SnapshotStore, member: EtcdMember) -> None:
    need = int((member.db_size or 0) * ROOM) + SLACK
    free = store.free_bytes()
    if free < need:
        raise SnapshotStoreError(f"snapshot store {store.root} has {free} bytes free; the etcd database of "
                                 f"{member.name or member.id} is {member.db_size or 0} bytes and needs {need}: "
                                 "free some space (`upgrader snapshot prune`) or use --store; nothing was recorded")


def cluster_configuration(kubeadm_config: Mapping[str, str] | None) -> dict[str, Any]:
    text = (kubeadm_config or {}).get("ClusterConfiguration")
    if not text:
        return {}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def is_external(kubeadm_config: Mapping[str, str] | None) -> bool:
    etcd = cluster_configuration(kubeadm_config).get("etcd")
    return isinstance(etcd, dict) and "external" in etcd


def version_set(inventory: Mapping[str, Any], kubeadm_config: Mapping[str, str] | None,
                packages: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """The cluster's versions at this moment: what a rollback must bring back."""
    components: dict[str, dict[str, str]] = {}
    kubelets: dict[str, str] = {}
    for node in inventory.get("nodes", []):
        kubelets[str(node.get("name"))] = str(node.get("kubelet"))
        for component, tag in (node.get("components") or {}).items():
            components.setdefault(component, {})[str(node.get("name"))] = str(tag)
    return {
        "kubernetes_version": cluster_configuration(kubeadm_config).get("kubernetesVersion"),
        "components": components,
        "etcd_image": sorted(set(components.get("etcd", {}).values())),
        "kubelets": kubelets,
        "packages": {node: dict(v) for node, v in packages.items()},
    }


def list_snapshots(app: AppContext, *, cluster: str | None = None, include_deleted: bool = False
                   ) -> list[SnapshotRecord]:
    if cluster is not None:
        validate_name(cluster)
    with app.unit_of_work() as uow:
        return uow.repo.list_snapshots(cluster, include_deleted=include_deleted)


def show_snapshot(app: AppContext, *, snapshot_id: int) -> SnapshotRecord:
    with app.unit_of_work() as uow:
        return uow.repo.get_snapshot(snapshot_id)


def set_pinned(app: AppContext, *, snapshot_id: int, pinned: bool) -> tuple[SnapshotRecord, bool]:
    """(the snapshot, whether it changed); pinning a deleted snapshot is refused."""
    with app.unit_of_work() as uow:
        current = uow.repo.get_snapshot(snapshot_id)
        if current.status.value == "deleted":
            raise UsageError(f"snapshot {snapshot_id} was deleted at {current.deleted_at:%Y-%m-%dT%H:%M:%SZ}; "
                                 "it cannot be pinned")
        if current.pinned == pinned:
            return current, False
        updated = uow.repo.set_snapshot_pinned(snapshot_id, pinned)
        record_event(app, uow, "snapshot-pinned" if pinned else "snapshot-unpinned", cluster=current.cluster,
                     data={"snapshot": snapshot_id})
        uow.commit()
        return updated, True
