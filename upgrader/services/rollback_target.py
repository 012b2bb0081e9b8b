"""Which snapshot a rollback goes back to, and what that snapshot says must be brought back.

Without ``--to``: the snapshot taken before the first hop of the cluster's last upgrade run (the
point that run started from); ``--to last-known-good``: the newest known-good snapshot of the
cluster; ``--to ID``. None of these: NoSnapshotError (exit 3) naming the command that makes one.

The target is read from the snapshot's own artefacts: per control-plane node, its etcd.yaml gives
the member's name, peer URL, data dir (through the manifest's hostPath volume) and the etcd image;
the recorded package builds and kubelet versions give the versions to reinstate.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from upgrader.domain.certificates import is_renewal
from upgrader.domain.records import RunRecord, SnapshotRecord, SnapshotState
from upgrader.domain.rollback import EtcdMemberSpec, RollbackTarget, is_rollback
from upgrader.domain.runbooks import is_runbook
from upgrader.domain.runs import StepStatus
from upgrader.domain.versions import Version
from upgrader.errors import IntegrityError, InvalidVersionError, NoUpgradePathError, UsageError
from upgrader.etcd.parsing import major_minor
from upgrader.services.wiring import AppContext

LAST_KNOWN_GOOD = "last-known-good"
REINSTATED = ("manifest", "kubelet-config", "kubelet-flags")


class NoSnapshotError(NoUpgradePathError):
    """No snapshot to roll back to (exit 3)."""


def first_snapshot(run: RunRecord) -> int | None:
    """The snapshot taken by the run's first finished snapshot step: where its first hop started."""
    for step in run.steps:
        if step.action == "snapshot" and step.status is StepStatus.SUCCEEDED and step.outputs:
            found = step.outputs.get("snapshot_id")
            if isinstance(found, int):
                return found
    return None


def last_upgrade_run(app: AppContext, cluster: str) -> RunRecord | None:
    """The cluster's newest run that is an upgrade (not a rollback, a certificate renewal or a runbook's)."""
    with app.unit_of_work() as uow:
        for run in uow.repo.list_runs(cluster):
            document = uow.repo.get_plan(run.plan_id).document
            if not (is_rollback(document) or is_renewal(document) or is_runbook(document)):
                return run
    return None


def choose(app: AppContext, cluster: str, to: str | None) -> tuple[SnapshotRecord, RunRecord | None]:
    """(the snapshot, the upgrade run it rolls back when there is one)."""
    last = last_upgrade_run(app, cluster)
    create = f"`upgrader snapshot create {cluster}`"
    if to is None:
        found = first_snapshot(last) if last is not None else None
        if found is None:
            said = (f"its last upgrade run ({last.id}) took no snapshot" if last is not None
                    else "it has no upgrade run")
            raise NoSnapshotError(f"no snapshot to roll cluster {cluster} back to: {said}; name one with --to ID or "
                                  f"--to {LAST_KNOWN_GOOD}, or take one with {create}")
        return _get(app, found), last
    if to == LAST_KNOWN_GOOD:
        with app.unit_of_work() as uow:
            good = [s for s in uow.repo.list_snapshots(cluster) if s.known_good and s.status is SnapshotState.COMPLETE]
        if not good:
            raise NoSnapshotError(f"cluster {cluster} has no known-good snapshot: take one with {create}")
        newest = max(good, key=lambda s: (s.created_at, s.id))
        return newest, _run_after(last, newest)
    if not (to.isascii() and to.isdigit()) or len(to) > 18:  # "²".isdigit() is true; int("²") fails
        raise UsageError(f"--to {to[:40]!r}: expected a snapshot id or {LAST_KNOWN_GOOD}")
    snapshot = _get(app, int(to))
    return snapshot, _run_after(last, snapshot)


def _run_after(run: RunRecord | None, snapshot: SnapshotRecord) -> RunRecord | None:
    """The last upgrade run, when it started after the snapshot (so the rollback undoes it)."""
    if run is None or run.started_at is None:
        return None
    return run if run.started_at >= snapshot.created_at else None


def _get(app: AppContext, snapshot_id: int) -> SnapshotRecord:
    with app.unit_of_work() as uow:
        return uow.repo.get_snapshot(snapshot_id)


def target_of(snapshot: SnapshotRecord) -> RollbackTarget:
    """The snapshot as a rollback target; IntegrityError (exit 8) when its records cannot be reinstated."""
    versions = snapshot.versions
    version = _version(versions, snapshot)
    members, images = [], set()
    manifests: dict[str, tuple[str, ...]] = {}
    for artefact in snapshot.artefacts:
        if artefact.kind == "manifest":
            manifests[artefact.node] = (*manifests.get(artefact.node, ()), artefact.node_path)
        if artefact.kind != "manifest" or not artefact.node_path.endswith("/etcd.yaml"):
            continue
        member, image = _member(artefact.node, Path(artefact.stored_path).read_bytes(), snapshot.id)
        members.append(member)
        if image:
            images.add(image)
    image = sorted(images)[-1] if images else None
    tag = image.rsplit(":", 1)[-1] if image and ":" in image else None
    etcd_version = (tag.split("-")[0] if tag and major_minor(tag) else None) or snapshot.etcd_status.get("etcd_version")
    return RollbackTarget(
        snapshot_id=int(snapshot.id), cluster=snapshot.cluster, version=version,
        kubelets={str(k): str(v) for k, v in (versions.get("kubelets") or {}).items()},
        packages={str(n): {str(p): str(b) for p, b in v.items()} for n, v in (versions.get("packages") or {}).items()},
        members=tuple(sorted(members, key=lambda m: m.node)), etcd_image=image,
        etcd_version=str(etcd_version) if etcd_version else None, manifests=manifests)


def _version(versions: Mapping[str, Any], snapshot: SnapshotRecord) -> Version:
    apiservers = (versions.get("components") or {}).get("kube-apiserver") or {}
    for text in (versions.get("kubernetes_version"), *sorted(apiservers.values())):
        try:
            return Version.parse(str(text))
        except InvalidVersionError:
            continue
    raise IntegrityError(f"snapshot {snapshot.id} records no Kubernetes version: it cannot be reinstated")


def _member(node: str, manifest: bytes, snapshot_id: int) -> tuple[EtcdMemberSpec, str | None]:
    try:
        pod = yaml.safe_load(manifest.decode("utf-8", errors="replace"))
        container = pod["spec"]["containers"][0]
        argv = [a for key in ("command", "args") for a in (container.get(key) or []) if isinstance(a, str)]
        flags = dict(a[2:].partition("=")[::2] for a in argv if a.startswith("--"))
        data_dir = _host_path(pod, container, flags.get("data-dir", "/var/lib/etcd"))
        peer = flags.get("initial-advertise-peer-urls", "").split(",")[0]
        if not peer:
            raise KeyError("--initial-advertise-peer-urls")
        return EtcdMemberSpec(node=node, name=flags.get("name", node), peer_url=peer, data_dir=data_dir), \
            container.get("image")
    except (yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise IntegrityError(f"snapshot {snapshot_id}: the etcd.yaml of {node} cannot be read as a static pod "
                             f"manifest ({type(e).__name__}: {e}): it cannot be reinstated") from None


def _host_path(pod: Mapping[str, Any], container: Mapping[str, Any], path: str) -> str:
    """The node path of a container path, through the pod's hostPath volumes."""
    volumes = {v.get("name"): (v.get("hostPath") or {}).get("path") for v in pod["spec"].get("volumes") or []}
    for mount in sorted(container.get("volumeMounts") or [], key=lambda m: -len(str(m.get("mountPath", "")))):
        base = str(mount.get("mountPath", "")).rstrip("/")
        host = volumes.get(mount.get("name"))
        if host and base and (path == base or path.startswith(base + "/")):
            return str(host).rstrip("/") + path[len(base):]
    return path


def artefacts(snapshot: SnapshotRecord, node: str) -> list[tuple[str, str, bytes]]:
    """The node's files to reinstate: (kind, node path, contents), contents checked against the record."""
    import hashlib

    out = []
    for artefact in snapshot.artefacts:
        if artefact.node != node or artefact.kind not in REINSTATED:
            continue
        data = Path(artefact.stored_path).read_bytes()
        if hashlib.sha256(data).hexdigest() != artefact.sha256:
            raise IntegrityError(f"snapshot {snapshot.id}: {artefact.node_path} of {node} changed since it was "
                                 "stored (sha256 differs)")
        out.append((artefact.kind, artefact.node_path, data))
    return out
