"""Runs keep apply's options (so resume continues with the same ones) and how they ended.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

``options``: the flags ``apply`` was given, ``{}`` for rows written before this revision (none:
nothing recorded runs before it). ``outcome``: the error, the snapshot to restore, the next
command; NULL until the run ends. Batch mode: SQLite rebuilds the table on the way down (foreign
keys are off while migrating, so run_steps survive the rebuild).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("options", sa.JSON(), server_default="{}", nullable=False))
        batch.add_column(sa.Column("outcome", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("outcome")
        batch.drop_column("options")
