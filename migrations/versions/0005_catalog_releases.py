"""The release listing `catalog refresh` reads (the stable-1.N.txt markers) is kept in the ledger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

``catalog_releases``: one row per version the listing named, keyed by version (a refresh upserts),
with the source's release date where it gave one (a marker's HTTP Last-Modified), where it came from
and when it was fetched. A new table: nothing existing changes, and going back drops it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_releases",
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("minor", sa.String(length=32), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_catalog_releases")),
    )
    op.create_index(op.f("ix_catalog_releases_minor"), "catalog_releases", ["minor"])


def downgrade() -> None:
    op.drop_index(op.f("ix_catalog_releases_minor"), table_name="catalog_releases")
    op.drop_table("catalog_releases")
