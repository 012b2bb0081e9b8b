"""Rows to records: the only place that knows both the ORM models and the frozen records."""

from __future__ import annotations

from upgrader.domain.records import (
    ClusterRecord,
    EventRecord,
    ObservationRecord,
    ObservationSource,
    PlanRecord,
    PlanStepRecord,
    SkipRecord,
)
from upgrader.domain.runs import EventId, ObservationId, PlanId, RunId
from upgrader.ledger.models import Cluster, Event, Observation, Plan, SkippedVersion


def observation(row: Observation, *, cluster: str) -> ObservationRecord:
    return ObservationRecord(
        id=ObservationId(row.id),
        cluster=cluster,
        observed_at=row.observed_at,
        fingerprint=row.fingerprint,
        source=ObservationSource(row.source),
        inventory=row.inventory,
    )


def skip(row: SkippedVersion) -> SkipRecord:
    return SkipRecord(version=row.version, reason=row.reason, created_by=row.created_by, created_at=row.created_at)


def cluster(row: Cluster) -> ClusterRecord:
    return ClusterRecord(
        name=row.name,
        kubeconfig=row.kubeconfig,
        context=row.context,
        transport=row.transport,
        created_at=row.created_at,
        skips=tuple(skip(s) for s in row.skips),
        created_by=row.created_by,
        schedule=row.schedule_policy,
        playbooks_dir=row.playbooks_dir,
    )


def plan(row: Plan) -> PlanRecord:
    return PlanRecord(
        id=PlanId(row.id),
        cluster=row.cluster.name,
        created_at=row.created_at,
        created_by=row.created_by,
        target=row.target,
        document=row.document,
        observation_id=ObservationId(row.observation_id) if row.observation_id is not None else None,
        strategy=row.strategy,
        skipped_versions=tuple(row.skipped_versions),
        source_fingerprint=row.source_fingerprint,
        steps=tuple(
            PlanStepRecord(
                n=s.n,
                action=s.action,
                node=s.node,
                version=s.version,
                batch=s.batch,
                reversibility=s.reversibility,
            )
            for s in row.steps
        ),
    )


def event(row: Event) -> EventRecord:
    return EventRecord(
        id=EventId(row.id),
        at=row.at,
        cluster=row.cluster_name,
        run_id=RunId(row.run_id) if row.run_id is not None else None,
        actor=row.actor,
        host=row.host,
        command_line=row.command_line,
        kind=row.kind,
        data=row.data,
    )
