"""Schedules: one row per cron tick that fired (the unique key decides, not timing), and the
tick a cron-triggered instance was started for.

Revision ID: 0003
Revises: 0002
Create Date: 2024-06-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
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
        f"{p}cron_ticks",
        sa.Column("dag_id", sa.String(_NAME), primary_key=True),
        sa.Column("tick", _TIME, primary_key=True),
        sa.Column("instance_id", sa.String(_ID), nullable=True),
        sa.Column("fired_at", _TIME, nullable=False),
        **_MYSQL,
    )
    op.add_column(f"{p}dag_instances", sa.Column("cron_tick", _TIME))


def downgrade(prefix: str) -> None:
    p = prefix
    with op.batch_alter_table(f"{p}dag_instances") as batch:
        batch.drop_column("cron_tick")
    op.drop_table(f"{p}cron_ticks")
