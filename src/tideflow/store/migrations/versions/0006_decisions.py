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
    with op.batch_alter_table(f"{p}dag_instances") as batch:
        batch.drop_column("compensation")
    with op.batch_alter_table(f"{p}commands") as batch:
        batch.drop_column("payload")
    with op.batch_alter_table(f"{p}task_instances") as batch:
        batch.drop_column("decision")
