"""Schema migrations: Alembic run in code, on a connection the store already holds.

The scripts live in ``tideflow/store/migrations`` and receive the table prefix; the version
table is prefixed too, so deployments sharing a database migrate independently.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ...errors import SchemaError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(prefix: str, connection: sa.Connection | None = None) -> Config:
    """An Alembic config for the packaged scripts, without an ini file."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["table_prefix"] = prefix
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this version of tideflow knows."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its scripts
        raise SchemaError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head


def known_revisions() -> frozenset[str]:
    """Every revision in the packaged scripts."""
    script = ScriptDirectory.from_config(alembic_config(""))
    return frozenset(s.revision for s in script.walk_revisions())


def current_revision(conn: sa.Connection, prefix: str) -> str | None:
    """The revision recorded in the database for ``prefix`` (None: no schema yet)."""
    ctx = MigrationContext.configure(conn, opts={"version_table": f"{prefix}alembic_version"})
    return ctx.get_current_revision()


def check_or_upgrade(conn: sa.Connection, prefix: str, migrate: bool) -> str:
    """Bring the schema to the head revision (with ``migrate``) or check that it is there.

    Runs inside the caller's transaction (and migration lock); returns the revision."""
    head = head_revision()
    current = current_revision(conn, prefix)
    if current == head:
        return head
    if current is not None and current not in known_revisions():
        raise SchemaError(
            f"the database schema for table prefix {prefix!r} is at revision {current!r}, "
            f"newer than this version of tideflow knows (its newest is {head!r}); "
            "upgrade tideflow on this node"
        )
    if not migrate:
        if current is None:
            raise SchemaError(
                f"the database has no tideflow tables for table prefix {prefix!r}; create "
                "them with `tideflow db upgrade` (or open the store with migrate=True)"
            )
        raise SchemaError(
            f"the database schema for table prefix {prefix!r} is at revision {current!r}, "
            f"older than this version of tideflow needs ({head!r}); run `tideflow db upgrade`"
        )
    command.upgrade(alembic_config(prefix, conn), "head")
    return head
