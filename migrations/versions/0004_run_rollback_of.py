"""A rollback's run names the run it rolls back, so the two are linked both ways in `runs show`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``runs.rollback_of``: NULL for every run but a rollback's (none before this revision). The
foreign key sets it NULL when the rolled-back run goes (with its plan), so the rollback's own row
stays for the audit trail. Batch mode: SQLite rebuilds the table to add the foreign key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("rollback_of", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_runs_rollback_of_runs", "runs", ["rollback_of"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_runs_rollback_of", ["rollback_of"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_rollback_of")
        batch.drop_constraint("fk_runs_rollback_of_runs", type_="foreignkey")
        batch.drop_column("rollback_of")
