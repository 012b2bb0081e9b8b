"""Snapshots as `upgrader snapshot` records them: label, who, the stored file,
external etcd, status (complete/deleted) and when it was deleted.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

The single ``files`` list becomes the stored etcd file's path, size and sha256 (a snapshot has
one etcd file; its other files are artefacts). Existing rows (none were ever written: nothing took
snapshots before this revision) would get empty defaults. Batch mode: SQLite rebuilds the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("files")
        batch.add_column(sa.Column("created_by", sa.String(length=255), server_default="", nullable=False))
        batch.add_column(sa.Column("label", sa.String(length=63), nullable=True))
        batch.add_column(sa.Column("path", sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("size", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("sha256", sa.String(length=64), server_default="", nullable=False))
        batch.add_column(sa.Column("external", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("status", sa.String(length=16), server_default="complete", nullable=False))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(op.f("ck_snapshots_status"), "status IN ('complete', 'deleted')")
    op.create_index(op.f("ix_snapshots_cluster_id_created_at"), "snapshots", ["cluster_id", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_snapshots_cluster_id_created_at"), table_name="snapshots")
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_constraint(op.f("ck_snapshots_status"), type_="check")
        for column in ("deleted_at", "status", "external", "sha256", "size", "path", "label", "created_by"):
            batch.drop_column(column)
        batch.add_column(sa.Column("files", sa.JSON(), server_default="[]", nullable=False))
