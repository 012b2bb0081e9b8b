"""The ledger's tables, as SQLAlchemy declarative models.

These models are the single source of truth for the schema: the alembic migrations must produce
exactly this metadata (tests compare them). Design decisions:

- Everything a cluster owns (skips, observations, plans, runs, snapshots) goes with it on
  ``cluster remove`` (ON DELETE CASCADE), but ``events`` name the cluster by value, not by key,
  so the audit trail survives the removal.
- Timestamps are timezone-aware UTC on the way in and out, whatever the backend stores.
- Status vocabularies are lowercase strings guarded by CHECK constraints, not native enums, so
  adding a status is a plain migration on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from upgrader.domain.records import ObservationSource, SnapshotState
from upgrader.domain.runs import RunStatus, StepStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME = 63  # a DNS label: what `cluster add` accepts
VERSION = 32
ACTOR = 255
NODE = 253  # a DNS subdomain: Kubernetes node names
TOKEN = 64


class UtcDateTime(sa.TypeDecorator[datetime]):
    """DateTime that refuses naive values and always returns aware UTC.

    SQLite stores no offset and PostgreSQL returns the session time zone; normalising here means
    comparisons (lease expiry) and records behave the same on both backends.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the ledger; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Ids are shown to users (`upgrader apply 7`); SQLite would otherwise hand a deleted id out again.
_NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def _json() -> sa.JSON:
    # none_as_null: a Python None is SQL NULL, so "no transport configured" is queryable as IS NULL.
    return sa.JSON(none_as_null=True)


class EncodedJson(str):
    """JSON text encoded ahead of time, stored as it is: a large plan is encoded before its write
    transaction begins, not while it holds SQLite's write lock (see SqlRepository.save_plan)."""

    __slots__ = ()

    @classmethod
    def of(cls, value: Any) -> EncodedJson:
        return cls(json.dumps(value))


def json_serializer(value: Any) -> str:
    """The engines' JSON encoder: ``json.dumps``, which EncodedJson values have already been through."""
    return value if isinstance(value, EncodedJson) else json.dumps(value)


def _in(column: str, values: type[Any]) -> str:
    return f"{column} IN ({', '.join(repr(str(v.value)) for v in values)})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: _json(), list[Any]: _json()}


class Cluster(Base):
    __tablename__ = "clusters"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(NAME), unique=True)
    kubeconfig: Mapped[str] = mapped_column(sa.Text)
    context: Mapped[str | None] = mapped_column(sa.Text)
    transport: Mapped[dict[str, Any] | None]
    schedule_policy: Mapped[dict[str, Any] | None]
    playbooks_dir: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(ACTOR))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    skips: Mapped[list[SkippedVersion]] = relationship(
        order_by="SkippedVersion.version", cascade="all, delete-orphan", passive_deletes=True
    )


class SkippedVersion(Base):
    __tablename__ = "skipped_versions"
    __table_args__ = (sa.UniqueConstraint("cluster_id", "version"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    cluster_id: Mapped[int] = mapped_column(sa.ForeignKey("clusters.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(sa.String(VERSION))
    reason: Mapped[str] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(ACTOR))
    created_at: Mapped[datetime]


class Observation(Base):
    __tablename__ = "observations"
    __table_args__ = (sa.CheckConstraint(_in("source", ObservationSource), name="source"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    cluster_id: Mapped[int] = mapped_column(sa.ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    observed_at: Mapped[datetime]
    fingerprint: Mapped[str] = mapped_column(sa.String(TOKEN))
    source: Mapped[str] = mapped_column(sa.String(8))
    inventory: Mapped[dict[str, Any]]


class Plan(Base):
    __tablename__ = "plans"
    __table_args__ = (_NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    cluster_id: Mapped[int] = mapped_column(sa.ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    observation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("observations.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(sa.String(ACTOR))
    target: Mapped[str] = mapped_column(sa.String(VERSION))
    strategy: Mapped[dict[str, Any]]
    skipped_versions: Mapped[list[Any]]
    source_fingerprint: Mapped[str | None] = mapped_column(sa.String(TOKEN))
    document: Mapped[dict[str, Any]]

    cluster: Mapped[Cluster] = relationship()
    steps: Mapped[list[PlanStep]] = relationship(
        order_by="PlanStep.n", cascade="all, delete-orphan", passive_deletes=True
    )


class PlanStep(Base):
    __tablename__ = "plan_steps"

    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True)
    n: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    action: Mapped[str] = mapped_column(sa.String(64))
    node: Mapped[str | None] = mapped_column(sa.String(NODE))
    version: Mapped[str | None] = mapped_column(sa.String(VERSION))
    batch: Mapped[int | None]
    reversibility: Mapped[str] = mapped_column(sa.String(32))


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        sa.CheckConstraint(_in("status", RunStatus), name="status"),
        sa.Index(None, "cluster_id", "status"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    cluster_id: Mapped[int] = mapped_column(sa.ForeignKey("clusters.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(sa.String(16))
    started_by: Mapped[str] = mapped_column(sa.String(ACTOR))
    host: Mapped[str] = mapped_column(sa.String(ACTOR))
    command_line: Mapped[str] = mapped_column(sa.Text)
    fencing_token: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    options: Mapped[dict[str, Any]] = mapped_column(server_default="{}")  # apply's flags, for resume
    outcome: Mapped[dict[str, Any] | None]  # how it ended: the error, the snapshot to restore, what next
    # a rollback's run: the run it rolls back (its row stays when that one is deleted with its plan)
    rollback_of: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"), index=True)

    steps: Mapped[list[RunStep]] = relationship(
        order_by="RunStep.n", cascade="all, delete-orphan", passive_deletes=True
    )


class RunStep(Base):
    __tablename__ = "run_steps"
    __table_args__ = (sa.CheckConstraint(_in("status", StepStatus), name="status"),)

    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    n: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    action: Mapped[str] = mapped_column(sa.String(64))
    node: Mapped[str | None] = mapped_column(sa.String(NODE))
    version: Mapped[str | None] = mapped_column(sa.String(VERSION))
    batch: Mapped[int | None]
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    outputs: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(sa.Text)


class Snapshot(Base):
    """A verified etcd snapshot and the control-plane artefacts taken with it.

    A row is written only once its file is stored and verified (never half-recorded); deleting a
    snapshot (prune) removes its files and keeps the row as ``deleted`` for the audit trail.
    ``etcd_status`` is the tool's view of the file: hash, revision, total_keys, total_size,
    version, and the etcd server version of the member it came from.
    """

    __tablename__ = "snapshots"
    __table_args__ = (
        sa.CheckConstraint(_in("status", SnapshotState), name="status"),
        sa.Index(None, "cluster_id", "created_at"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cluster_id: Mapped[int] = mapped_column(sa.ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(sa.String(ACTOR), server_default="")
    label: Mapped[str | None] = mapped_column(sa.String(NAME))
    path: Mapped[str] = mapped_column(sa.Text, server_default="")  # the etcd file in the snapshot store
    size: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    sha256: Mapped[str] = mapped_column(sa.String(TOKEN), server_default="")
    etcd_status: Mapped[dict[str, Any]]
    source_member: Mapped[str] = mapped_column(sa.String(NODE))
    external: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    versions: Mapped[dict[str, Any]]
    artefacts: Mapped[list[Any]]  # [{"node", "kind", "node_path", "stored_path", "sha256", "size"}]
    known_good: Mapped[bool] = mapped_column(default=False)
    known_good_reason: Mapped[str | None] = mapped_column(sa.Text)
    pinned: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(sa.String(16), server_default=SnapshotState.COMPLETE.value)
    deleted_at: Mapped[datetime | None]


class Event(Base):
    """Append-only audit stream; nothing updates or deletes these rows."""

    __tablename__ = "events"
    __table_args__ = (sa.Index(None, "cluster_name", "id"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    cluster_name: Mapped[str | None] = mapped_column(sa.String(NAME))
    run_id: Mapped[int | None]
    actor: Mapped[str] = mapped_column(sa.String(ACTOR))
    host: Mapped[str] = mapped_column(sa.String(ACTOR))
    command_line: Mapped[str] = mapped_column(sa.Text)
    kind: Mapped[str] = mapped_column(sa.String(64))
    data: Mapped[dict[str, Any] | None]


class ClusterLock(Base):
    """One lease per cluster name; keyed by name so a lock can be taken before any row is read."""

    __tablename__ = "cluster_locks"

    cluster_name: Mapped[str] = mapped_column(sa.String(NAME), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(ACTOR))
    run_id: Mapped[int | None]
    fencing_token: Mapped[int] = mapped_column(sa.BigInteger)
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class LockToken(Base):
    """A single-row counter: the last fencing token handed out, across all clusters.

    Incremented with an upsert in the same transaction as the lease it stamps, so tokens are
    strictly increasing in commit order on both backends (the row lock serialises takers).
    """

    __tablename__ = "lock_tokens"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(sa.BigInteger)


class CatalogRelease(Base):
    """The stored release listing (``catalog refresh``): one row per version it named.

    Keyed by version, so a refresh is an upsert and two refreshes at once cannot duplicate a row;
    ``released_at`` is the source's date (a marker's Last-Modified), NULL when it gave none.
    """

    __tablename__ = "catalog_releases"

    version: Mapped[str] = mapped_column(sa.String(VERSION), primary_key=True)
    minor: Mapped[str] = mapped_column(sa.String(VERSION), index=True)
    released_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(sa.Text)
    fetched_at: Mapped[datetime]
