"""The tables of the SQL store, built for a table prefix.

The migration scripts create the same tables; ``tests/store`` checks that a fresh upgrade and
this metadata agree. Change both together (a new migration, never an edited one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

from ...errors import InputError

#: length of instance ids (sortable strings made by the engine)
ID_LEN = 64
#: names that are indexed: MySQL's utf8mb4 limits an index key column to 191 characters
NAME_LEN = 191
STATUS_LEN = 16

_PREFIX_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]{0,19})?$")

# MySQL's TEXT holds only 64 KB; definitions, params and traces can be larger.
JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

# Tables are stored in utf8mb4 with a binary collation on MySQL, so that ids compare exactly
# (case-sensitive) as they do on SQLite and PostgreSQL.
_MYSQL_TABLE_ARGS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp with microseconds, stored as naive UTC and read back as aware UTC.

    Naive values given to the store are taken to be UTC already."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            # DATETIME without fsp drops the microseconds
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start table and index names, else raise InputError."""
    if not _PREFIX_RE.match(prefix):
        raise InputError(
            f"table prefix {prefix!r} is invalid: use up to 20 letters, digits or underscores, "
            "starting with a letter (for example 'tf_')"
        )
    return prefix


@dataclass(frozen=True)
class Tables:
    """The store's tables for one prefix."""

    prefix: str
    metadata: sa.MetaData
    dags: sa.Table
    dag_versions: sa.Table
    instances: sa.Table
    tags: sa.Table
    tasks: sa.Table
    commands: sa.Table
    nodes: sa.Table
    leases: sa.Table
    cron_ticks: sa.Table
    task_logs: sa.Table

    @property
    def version_table(self) -> str:
        """Alembic's version table, prefixed like the others."""
        return f"{self.prefix}alembic_version"


def build_tables(prefix: str = "tf_") -> Tables:
    """Build the metadata for ``prefix`` (validated)."""
    p = check_prefix(prefix)
    md = sa.MetaData()

    dags = sa.Table(
        f"{p}dags",
        md,
        sa.Column("id", sa.String(NAME_LEN), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(STATUS_LEN), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        # the schedule is paused (the cron trigger skips the DAG); kept across versions
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        **_MYSQL_TABLE_ARGS,
    )
    # No foreign key to dags: a forced delete keeps the versions unfinished instances run on.
    dag_versions = sa.Table(
        f"{p}dag_versions",
        md,
        sa.Column("dag_id", sa.String(NAME_LEN), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("definition", JsonText, nullable=False),
        sa.Column("status", sa.String(STATUS_LEN), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        **_MYSQL_TABLE_ARGS,
    )
    instances = sa.Table(
        f"{p}dag_instances",
        md,
        sa.Column("id", sa.String(ID_LEN), primary_key=True),
        sa.Column("dag_id", sa.String(NAME_LEN), nullable=False),
        sa.Column("dag_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(STATUS_LEN), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("vars", JsonText, nullable=False),
        sa.Column("share_data", JsonText, nullable=False),
        sa.Column("selector", JsonText, nullable=False),
        sa.Column("worker", sa.String(NAME_LEN), nullable=True),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("ended_at", UtcDateTime, nullable=True),
        # a run submitted twice with one key is one instance (unique per DAG)
        sa.Column("idempotency_key", sa.String(NAME_LEN), nullable=True),
        # the cron tick a scheduled run was started for
        sa.Column("cron_tick", UtcDateTime, nullable=True),
        # running | done | failed once the instance's compensation began, else NULL
        sa.Column("compensation", sa.String(STATUS_LEN), nullable=True),
        # the W3C traceparent of the trace the run continues, else NULL
        sa.Column("trace_parent", sa.String(64), nullable=True),
        sa.Index(f"{p}dag_instances_status_idx", "status"),
        sa.Index(f"{p}dag_instances_dag_created_idx", "dag_id", "created_at"),
        sa.Index(f"{p}dag_instances_worker_status_idx", "worker", "status"),
        sa.Index(f"{p}dag_instances_idem_idx", "dag_id", "idempotency_key", unique=True),
        **_MYSQL_TABLE_ARGS,
    )
    tags = sa.Table(
        f"{p}dag_instance_tags",
        md,
        sa.Column(
            "instance_id",
            sa.String(ID_LEN),
            sa.ForeignKey(instances.c.id, ondelete="CASCADE", name=f"{p}tags_instance_fk"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(NAME_LEN), primary_key=True),
        sa.Column("value", sa.String(NAME_LEN), nullable=False),
        sa.Index(f"{p}dag_instance_tags_kv_idx", "key", "value"),
        **_MYSQL_TABLE_ARGS,
    )
    tasks = sa.Table(
        f"{p}task_instances",
        md,
        sa.Column(
            "instance_id",
            sa.String(ID_LEN),
            sa.ForeignKey(instances.c.id, ondelete="CASCADE", name=f"{p}tasks_instance_fk"),
            primary_key=True,
        ),
        sa.Column("task_id", sa.String(NAME_LEN), primary_key=True),
        # position in the definition: tasks are read back in the order they were written
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("action_name", sa.String(NAME_LEN), nullable=False),
        sa.Column("status", sa.String(STATUS_LEN), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("attempt_history", JsonText, nullable=False),
        sa.Column("depend_on", JsonText, nullable=False),
        sa.Column("params", JsonText, nullable=True),
        sa.Column("traces", JsonText, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=True),
        sa.Column("ended_at", UtcDateTime, nullable=True),
        sa.Column("continued", sa.Boolean, nullable=False),
        # what the action returned (JSON text), NULL when nothing
        sa.Column("output", JsonText, nullable=True),
        # an approval's decision (JSON text), kept from its continue or reject to its run
        sa.Column("decision", JsonText, nullable=True),
        **_MYSQL_TABLE_ARGS,
    )
    commands = sa.Table(
        f"{p}commands",
        md,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("instance_id", sa.String(ID_LEN), nullable=False),
        sa.Column("kind", sa.String(STATUS_LEN), nullable=False),
        sa.Column("task_ids", JsonText, nullable=True),
        # what a continue or reject carries (inputs, who, reason), JSON text
        sa.Column("payload", JsonText, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        # the process applying it; the row is deleted once the command is applied
        sa.Column("claimed_by", sa.String(NAME_LEN), nullable=True),
        sa.Index(f"{p}commands_instance_idx", "instance_id"),
        # never reuse ids on SQLite, so "newest id" keeps growing as a change hint
        sqlite_autoincrement=True,
        **_MYSQL_TABLE_ARGS,
    )
    # one row per live (or recently live) node; heartbeats are judged by the database's clock
    nodes = sa.Table(
        f"{p}nodes",
        md,
        sa.Column("node_id", sa.String(NAME_LEN), primary_key=True),
        sa.Column("incarnation", sa.String(ID_LEN), nullable=False),
        sa.Column("role", sa.String(STATUS_LEN), nullable=False),
        sa.Column("host", sa.String(NAME_LEN), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("heartbeat_at", UtcDateTime, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("running", sa.Integer, nullable=False),
        sa.Column("assigned", sa.Integer, nullable=False),
        sa.Column("labels", JsonText, nullable=False),
        sa.Column("actions", JsonText, nullable=False),
        **_MYSQL_TABLE_ARGS,
    )
    # named leases with fencing tokens: the leader's lease and the distributed mutexes
    leases = sa.Table(
        f"{p}leases",
        md,
        sa.Column("name", sa.String(NAME_LEN), primary_key=True),
        sa.Column("holder", sa.String(NAME_LEN), nullable=True),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("acquired_at", UtcDateTime, nullable=True),
        sa.Column("expires_at", UtcDateTime, nullable=True),
        **_MYSQL_TABLE_ARGS,
    )
    # one row per cron tick that fired (or was skipped): the primary key makes a tick fire once
    cron_ticks = sa.Table(
        f"{p}cron_ticks",
        md,
        sa.Column("dag_id", sa.String(NAME_LEN), primary_key=True),
        sa.Column("tick", UtcDateTime, primary_key=True),
        sa.Column("instance_id", sa.String(ID_LEN), nullable=True),
        sa.Column("fired_at", UtcDateTime, nullable=False),
        **_MYSQL_TABLE_ARGS,
    )
    # the log of each attempt, in chunks of lines written together (one row per flush and
    # attempt, not per line); the id orders the chunks and is the cursor of a follower
    task_logs = sa.Table(
        f"{p}task_logs",
        md,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "instance_id",
            sa.String(ID_LEN),
            sa.ForeignKey(instances.c.id, ondelete="CASCADE", name=f"{p}logs_instance_fk"),
            nullable=False,
        ),
        sa.Column("task_id", sa.String(NAME_LEN), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("line_count", sa.Integer, nullable=False),
        # JSON: [[time, stream, text, level], ...]
        sa.Column("body", JsonText, nullable=False),
        sa.Index(f"{p}task_logs_task_idx", "instance_id", "task_id", "id"),
        sqlite_autoincrement=True,
        **_MYSQL_TABLE_ARGS,
    )
    return Tables(p, md, dags, dag_versions, instances, tags, tasks, commands, nodes, leases,
                  cron_ticks, task_logs)
