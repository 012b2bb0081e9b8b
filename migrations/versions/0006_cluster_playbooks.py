"""A cluster may name the upgrade playbooks its plans expand (`cluster add/set --playbooks DIR`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``clusters.playbooks_dir``: the directory of the operator's playbook copy, NULL for the shipped
playbooks (every existing cluster keeps planning exactly as before). Going back drops the column.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("playbooks_dir", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("playbooks_dir")
