"""Cluster registration use cases: add, list, show, remove, and the per-cluster skip list."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upgrader.cluster.kubeconfig import validate_kubeconfig
from upgrader.domain.names import validate_name
from upgrader.domain.records import ClusterRecord
from upgrader.domain.redaction import redact
from upgrader.domain.text import excerpt
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


def set_playbooks(app: AppContext, *, name: str, directory: str | None) -> ClusterRecord:
    """Make the cluster's plans expand the playbooks in ``directory`` (None: the shipped ones again). The
    copy is validated now, so that a plan never finds out first; recorded as an event."""
    from upgrader.services.playbooks import load_playbooks, playbook_dir

    validate_name(name)
    stored = None
    if directory is not None:
        path = playbook_dir(directory)
        load_playbooks(path)
        stored = str(path)
    with app.unit_of_work() as uow:
        before = uow.repo.get_cluster(name).playbooks_dir
        record = uow.repo.set_cluster_playbooks(name, stored)
        record_event(app, uow, "playbooks-changed", cluster=name, data={"before": before, "after": stored})
        uow.commit()
    return record


def unregister_cluster(app: AppContext, *, name: str) -> None:
    validate_name(name)
    with app.unit_of_work() as uow:
        uow.repo.remove_cluster(name)
        record_event(app, uow, "cluster-removed", cluster=name)
        uow.commit()


def list_clusters(app: AppContext) -> list[ClusterRecord]:
    with app.unit_of_work() as uow:
        return list(uow.repo.list_clusters())


def show_cluster(app: AppContext, *, name: str) -> ClusterRecord:
    validate_name(name)
    with app.unit_of_work() as uow:
        return uow.repo.get_cluster(name)


MAX_REASON = 500  # characters of a skip reason: a line in every plan, not a report


@dataclass(frozen=True, slots=True)
class SkipResult:
    record: ClusterRecord
    version: Version  # normalised: " v1.31.3 " and "1.31.3" are both v1.31.3
    replaced: str | None  # the reason this skip had before, when it was already skipped


def skip_version(app: AppContext, *, cluster: str, version: str, reason: str) -> SkipResult:
    """Skip a version (or re-word the reason of one already skipped, which the result says)."""
    validate_name(cluster)
    parsed = Version.parse(version)
    # The reason is shared prose (`cluster show`, the audit trail): a credential pasted into it stays out.
    reason = redact(_one_line_reason(reason))
    with app.unit_of_work() as uow:
        before = {s.version: s.reason for s in uow.repo.get_cluster(cluster).skips}.get(str(parsed))
        uow.repo.add_skip(cluster=cluster, version=str(parsed), reason=reason, actor=app.actor.user)
        data = {"version": str(parsed), "reason": reason} | ({"replaced": before} if before is not None else {})
        record_event(app, uow, "version-skipped", cluster=cluster, data=data)
        uow.commit()
        return SkipResult(uow.repo.get_cluster(cluster), parsed, before if before != reason else None)


def _one_line_reason(reason: str) -> str:
    """A reason is shown on one line of every plan and table: no control characters, bounded length."""
    reason = reason.strip()
    if not reason:
        raise UsageError("--reason must say why this version is skipped")
    if any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in reason):
        raise UsageError(f"--reason must be one line of text, without control characters: {excerpt(reason)}")
    if len(reason) > MAX_REASON:
        raise UsageError(f"--reason is {len(reason)} characters; keep it under {MAX_REASON} (link a ticket for more)")
    return reason


def unskip_version(app: AppContext, *, cluster: str, version: str) -> tuple[Version, bool]:
    """Allow a version again: (the normalised version, whether it had been skipped)."""
    validate_name(cluster)
    parsed = Version.parse(version)
    with app.unit_of_work() as uow:
        removed = uow.repo.remove_skip(cluster=cluster, version=str(parsed))
        if removed:
            record_event(app, uow, "version-unskipped", cluster=cluster, data={"version": str(parsed)})
        uow.commit()
        return parsed, bool(removed)
