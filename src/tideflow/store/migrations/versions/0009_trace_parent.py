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
    # plain DROP COLUMN (SQLite has it since 3.35): a batch copy of dag_instances on SQLite
    # would drop the old table, and its ON DELETE CASCADE would take every task row with it
    op.drop_column(f"{prefix}dag_instances", "trace_parent")
