"""Cluster registration use cases: add, list, show, remove, and the per-cluster skip list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from upgrader.cluster.kubeconfig import validate_kubeconfig
from upgrader.domain.names import validate_name
from upgrader.domain.records import ClusterRecord
from upgrader.domain.versions import Version
from upgrader.errors import UsageError
from upgrader.services.audit import record_event
from upgrader.services.wiring import AppContext


def register_cluster(
    app: AppContext, *, name: str, kubeconfig: Path, context: str | None, transport: dict[str, Any] | None = None
) -> ClusterRecord:
    validate_name(name)
    path, chosen = validate_kubeconfig(kubeconfig, context)
    with app.unit_of_work() as uow:
        record = uow.repo.add_cluster(
            name=name, kubeconfig=str(path), context=chosen, transport=transport, actor=app.actor.user
        )
        record_event(app, uow, "cluster-added", cluster=name, data={"kubeconfig": str(path), "context": chosen})
        uow.commit()
    return record


def unregister_cluster(app: AppContext, *, name: str) -> None:
    with app.unit_of_work() as uow:
        uow.repo.remove_cluster(name)
        record_event(app, uow, "cluster-removed", cluster=name)
        uow.commit()


def list_clusters(app: AppContext) -> list[ClusterRecord]:
    with app.unit_of_work() as uow:
        return list(uow.repo.list_clusters())


def show_cluster(app: AppContext, *, name: str) -> ClusterRecord:
    with app.unit_of_work() as uow:
        return uow.repo.get_cluster(name)


def skip_version(app: AppContext, *, cluster: str, version: str, reason: str) -> ClusterRecord:
    parsed = Version.parse(version)
    if not reason.strip():
        raise UsageError("--reason must say why this version is skipped")
    with app.unit_of_work() as uow:
        uow.repo.add_skip(cluster=cluster, version=str(parsed), reason=reason.strip(), actor=app.actor.user)
        record_event(app, uow, "version-skipped", cluster=cluster, data={"version": str(parsed), "reason": reason})
        uow.commit()
        return uow.repo.get_cluster(cluster)


def unskip_version(app: AppContext, *, cluster: str, version: str) -> bool:
    parsed = Version.parse(version)
    with app.unit_of_work() as uow:
        removed = uow.repo.remove_skip(cluster=cluster, version=str(parsed))
        if removed:
            record_event(app, uow, "version-unskipped", cluster=cluster, data={"version": str(parsed)})
        uow.commit()
        return bool(removed)
