"""The cluster: nodes, named leases (the leader's and mutexes), idempotency keys of runs.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_ID = 64
_NAME = 191
_STATUS = 16
_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def upgrade(prefix: str) -> None:
    p = prefix
    op.create_table(
        f"{p}nodes",
        sa.Column("node_id", sa.String(_NAME), primary_key=True),
        sa.Column("incarnation", sa.String(_ID), nullable=False),
        sa.Column("role", sa.String(_STATUS), nullable=False),
        sa.Column("host", sa.String(_NAME), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("heartbeat_at", _TIME, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("running", sa.Integer, nullable=False),
        sa.Column("assigned", sa.Integer, nullable=False),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("actions", _JSON, nullable=False),
        **_MYSQL,
    )
    op.create_table(
        f"{p}leases",
        sa.Column("name", sa.String(_NAME), primary_key=True),
        sa.Column("holder", sa.String(_NAME), nullable=True),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("acquired_at", _TIME, nullable=True),
        sa.Column("expires_at", _TIME, nullable=True),
        **_MYSQL,
    )
    op.add_column(f"{p}dag_instances", sa.Column("idempotency_key", sa.String(_NAME)))
    op.create_index(
        f"{p}dag_instances_idem_idx",
        f"{p}dag_instances",
        ["dag_id", "idempotency_key"],
        unique=True,
    )


def downgrade(prefix: str) -> None:
    p = prefix
    op.drop_index(f"{p}dag_instances_idem_idx", table_name=f"{p}dag_instances")
    with op.batch_alter_table(f"{p}dag_instances") as batch:
        batch.drop_column("idempotency_key")
    op.drop_table(f"{p}leases")
    op.drop_table(f"{p}nodes")
