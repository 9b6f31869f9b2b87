"""Alembic environment for tideflow's store.

Migrations are run by :mod:`tideflow.store.sql.migrate`, which hands over an open connection
(already inside a transaction and holding the migration lock) and the table prefix through
``config.attributes``; there is no ini file and no engine is created here.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("tideflow migrations run through tideflow itself: use `tideflow db upgrade`")
prefix: str = config.attributes.get("table_prefix", "tf_")

context.configure(
    connection=connection,
    version_table=f"{prefix}alembic_version",
    target_metadata=None,
)

with context.begin_transaction():
    # every revision's upgrade()/downgrade() takes the prefix of the tables it works on
    context.run_migrations(prefix=prefix)
