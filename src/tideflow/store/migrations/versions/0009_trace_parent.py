"""An instance keeps the W3C traceparent of the trace its run continues.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade(prefix: str) -> None:
    op.add_column(f"{prefix}dag_instances",
                  sa.Column("trace_parent", sa.String(64), nullable=True))


def downgrade(prefix: str) -> None:
    with op.batch_alter_table(f"{prefix}dag_instances") as batch:
        batch.drop_column("trace_parent")
