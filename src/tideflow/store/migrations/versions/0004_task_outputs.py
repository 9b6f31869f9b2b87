"""Task outputs: what a task's action returned (JSON text), readable by its descendants.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade(prefix: str) -> None:
    op.add_column(f"{prefix}task_instances", sa.Column("output", _JSON, nullable=True))


def downgrade(prefix: str) -> None:
    with op.batch_alter_table(f"{prefix}task_instances") as batch:
        batch.drop_column("output")
