"""The initial ledger schema: clusters, observations, plans, runs, snapshots, events, leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-30

Hand-reviewed from autogenerate. Migrations never import the models: a revision must keep
producing the schema of its day, whatever the models become later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _cluster_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["cluster_id"], ["clusters.id"], name=op.f(f"fk_{table}_cluster_id_clusters"), ondelete="CASCADE"
    )


def upgrade() -> None:
    _clusters()
    _observations_and_plans()
    _runs_and_snapshots()
    _events_and_locks()


def _clusters() -> None:
    op.create_table(
        "clusters",
        _id(),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("kubeconfig", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("transport", sa.JSON(), nullable=True),
        sa.Column("schedule_policy", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusters")),
        sa.UniqueConstraint("name", name=op.f("uq_clusters_name")),
        **NEVER_REUSE_IDS,
    )
    op.create_table(
        "skipped_versions",
        _id(),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        _at("created_at"),
        _cluster_fk("skipped_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skipped_versions")),
        sa.UniqueConstraint("cluster_id", "version", name=op.f("uq_skipped_versions_cluster_id_version")),
        **NEVER_REUSE_IDS,
    )


def _observations_and_plans() -> None:
    op.create_table(
        "observations",
        _id(),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        _at("observed_at"),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("inventory", sa.JSON(), nullable=False),
        sa.CheckConstraint("source IN ('file', 'live')", name=op.f("ck_observations_source")),
        _cluster_fk("observations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
        **NEVER_REUSE_IDS,
    )
    op.create_index(op.f("ix_observations_cluster_id"), "observations", ["cluster_id"])
    op.create_table(
        "plans",
        _id(),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("observation_id", sa.Integer(), nullable=True),
        _at("created_at"),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.JSON(), nullable=False),
        sa.Column("skipped_versions", sa.JSON(), nullable=False),
        sa.Column("source_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        _cluster_fk("plans"),
        sa.ForeignKeyConstraint(
            ["observation_id"],
            ["observations.id"],
            name=op.f("fk_plans_observation_id_observations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        **NEVER_REUSE_IDS,
    )
    op.create_index(op.f("ix_plans_cluster_id"), "plans", ["cluster_id"])
    op.create_table(
        "plan_steps",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=253), nullable=True),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("batch", sa.Integer(), nullable=True),
        sa.Column("reversibility", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_plan_steps_plan_id_plans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("plan_id", "n", name=op.f("pk_plan_steps")),
    )


def _runs_and_snapshots() -> None:
    op.create_table(
        "runs",
        _id(),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_by", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("command_line", sa.Text(), nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        _at("created_at"),
        _at("started_at", nullable=True),
        _at("finished_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'rolled_back', 'interrupted')",
            name=op.f("ck_runs_status"),
        ),
        _cluster_fk("runs"),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_runs_plan_id_plans"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        **NEVER_REUSE_IDS,
    )
    op.create_index(op.f("ix_runs_cluster_id_status"), "runs", ["cluster_id", "status"])
    op.create_index(op.f("ix_runs_plan_id"), "runs", ["plan_id"])
    op.create_table(
        "run_steps",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=253), nullable=True),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("batch", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _at("started_at", nullable=True),
        _at("finished_at", nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')",
            name=op.f("ck_run_steps_status"),
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_steps_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "n", name=op.f("pk_run_steps")),
    )
    op.create_table(
        "snapshots",
        _id(),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        _at("created_at"),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("etcd_status", sa.JSON(), nullable=False),
        sa.Column("source_member", sa.String(length=253), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("artefacts", sa.JSON(), nullable=False),
        sa.Column("known_good", sa.Boolean(), nullable=False),
        sa.Column("known_good_reason", sa.Text(), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        _cluster_fk("snapshots"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_snapshots_run_id_runs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
        **NEVER_REUSE_IDS,
    )
    op.create_index(op.f("ix_snapshots_cluster_id"), "snapshots", ["cluster_id"])


def _events_and_locks() -> None:
    # events name their cluster by value (no foreign key): the audit trail outlives `cluster remove`.
    op.create_table(
        "events",
        _id(),
        _at("at"),
        sa.Column("cluster_name", sa.String(length=63), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("command_line", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        **NEVER_REUSE_IDS,
    )
    op.create_index(op.f("ix_events_cluster_name_id"), "events", ["cluster_name", "id"])
    op.create_table(
        "cluster_locks",
        sa.Column("cluster_name", sa.String(length=63), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        _at("acquired_at"),
        _at("expires_at"),
        sa.PrimaryKeyConstraint("cluster_name", name=op.f("pk_cluster_locks")),
    )
    op.create_table(
        "lock_tokens",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_lock_tokens_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lock_tokens")),
    )


def downgrade() -> None:
    # Children before parents: SQLite checks foreign keys on DROP TABLE when they are enforced.
    for table in (
        "lock_tokens",
        "cluster_locks",
        "events",
        "snapshots",
        "run_steps",
        "runs",
        "plan_steps",
        "plans",
        "observations",
        "skipped_versions",
        "clusters",
    ):
        op.drop_table(table)
