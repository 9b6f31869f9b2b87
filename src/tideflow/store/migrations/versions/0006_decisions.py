"""Approval decisions and compensation: a task's decision (continue with inputs, reject), the
payload a queued continue or reject carries, and an instance's compensation state.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade(prefix: str) -> None:
    p = prefix
    op.add_column(f"{p}task_instances", sa.Column("decision", _JSON, nullable=True))
    op.add_column(f"{p}commands", sa.Column("payload", _JSON, nullable=True))
    op.add_column(f"{p}dag_instances", sa.Column("compensation", sa.String(16), nullable=True))


def downgrade(prefix: str) -> None:
    p = prefix
    # plain DROP COLUMN (SQLite has it since 3.35): a batch copy of dag_instances on SQLite
    # would drop the old table, and its ON DELETE CASCADE would take every task row with it
    op.drop_column(f"{p}dag_instances", "compensation")
    op.drop_column(f"{p}commands", "payload")
    op.drop_column(f"{p}task_instances", "decision")
