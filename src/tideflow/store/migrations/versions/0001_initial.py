"""The initial schema: DAGs and their versions, instances, tags, tasks and commands.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

The types are spelled out here rather than imported from ``schema.py`` so that this revision
stays what it was when later revisions change the model.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
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
        f"{p}dags",
        sa.Column("id", sa.String(_NAME), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(_STATUS), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        **_MYSQL,
    )
    op.create_table(
        f"{p}dag_versions",
        sa.Column("dag_id", sa.String(_NAME), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("status", sa.String(_STATUS), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        **_MYSQL,
    )
    op.create_table(
        f"{p}dag_instances",
        sa.Column("id", sa.String(_ID), primary_key=True),
        sa.Column("dag_id", sa.String(_NAME), nullable=False),
        sa.Column("dag_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(_STATUS), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("vars", _JSON, nullable=False),
        sa.Column("share_data", _JSON, nullable=False),
        sa.Column("selector", _JSON, nullable=False),
        sa.Column("worker", sa.String(_NAME), nullable=True),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("ended_at", _TIME, nullable=True),
        **_MYSQL,
    )
    op.create_index(f"{p}dag_instances_status_idx", f"{p}dag_instances", ["status"])
    op.create_index(
        f"{p}dag_instances_dag_created_idx", f"{p}dag_instances", ["dag_id", "created_at"]
    )
    op.create_index(
        f"{p}dag_instances_worker_status_idx", f"{p}dag_instances", ["worker", "status"]
    )
    op.create_table(
        f"{p}dag_instance_tags",
        sa.Column("instance_id", sa.String(_ID), primary_key=True),
        sa.Column("key", sa.String(_NAME), primary_key=True),
        sa.Column("value", sa.String(_NAME), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            [f"{p}dag_instances.id"],
            ondelete="CASCADE",
            name=f"{p}tags_instance_fk",
        ),
        **_MYSQL,
    )
    op.create_index(f"{p}dag_instance_tags_kv_idx", f"{p}dag_instance_tags", ["key", "value"])
    op.create_table(
        f"{p}task_instances",
        sa.Column("instance_id", sa.String(_ID), primary_key=True),
        sa.Column("task_id", sa.String(_NAME), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("action_name", sa.String(_NAME), nullable=False),
        sa.Column("status", sa.String(_STATUS), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("attempt_history", _JSON, nullable=False),
        sa.Column("depend_on", _JSON, nullable=False),
        sa.Column("params", _JSON, nullable=True),
        sa.Column("traces", _JSON, nullable=False),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("ended_at", _TIME, nullable=True),
        sa.Column("continued", sa.Boolean, nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            [f"{p}dag_instances.id"],
            ondelete="CASCADE",
            name=f"{p}tasks_instance_fk",
        ),
        **_MYSQL,
    )
    op.create_table(
        f"{p}commands",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("instance_id", sa.String(_ID), nullable=False),
        sa.Column("kind", sa.String(_STATUS), nullable=False),
        sa.Column("task_ids", _JSON, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sqlite_autoincrement=True,
        **_MYSQL,
    )
    op.create_index(f"{p}commands_instance_idx", f"{p}commands", ["instance_id"])


def downgrade(prefix: str) -> None:
    p = prefix
    for table in (
        "commands",
        "task_instances",
        "dag_instance_tags",
        "dag_instances",
        "dag_versions",
        "dags",
    ):
        op.drop_table(f"{p}{table}")
