"""Task logs: each attempt's lines (shell output, the action's log, the engine's own lines),
stored in chunks written together.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_ID = 64
_NAME = 191
_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def upgrade(prefix: str) -> None:
    p = prefix
    op.create_table(
        f"{p}task_logs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("instance_id", sa.String(_ID), nullable=False),
        sa.Column("task_id", sa.String(_NAME), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("line_count", sa.Integer, nullable=False),
        sa.Column("body", _JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            [f"{p}dag_instances.id"],
            ondelete="CASCADE",
            name=f"{p}logs_instance_fk",
        ),
        sqlite_autoincrement=True,
        **_MYSQL,
    )
    op.create_index(f"{p}task_logs_task_idx", f"{p}task_logs", ["instance_id", "task_id", "id"])


def downgrade(prefix: str) -> None:
    op.drop_table(f"{prefix}task_logs")
