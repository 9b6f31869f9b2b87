"""A DAG's schedule can be paused and resumed without a new version.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade(prefix: str) -> None:
    op.add_column(
        f"{prefix}dags",
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade(prefix: str) -> None:
    with op.batch_alter_table(f"{prefix}dags") as batch:
        batch.drop_column("paused")
