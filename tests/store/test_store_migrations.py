"""Schema migrations: fresh upgrade equals the model, locking, versions and prefixes."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from store_factories import make_dag, make_instance, make_tasks

from tideflow.errors import InputError, SchemaError
from tideflow.store.sql import SqlStore


def _describe(conn: sa.Connection, prefix: str) -> dict[str, Any]:
    """Tables of ``prefix`` as the database reports them."""
    inspector = sa.inspect(conn)
    found: dict[str, Any] = {}
    for table in inspector.get_table_names():
        if not table.startswith(prefix) or table == f"{prefix}alembic_version":
            continue
        found[table] = {
            "columns": {c["name"]: c["nullable"] for c in inspector.get_columns(table)},
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]))
                for i in inspector.get_indexes(table)
                if i["name"] and i["name"].startswith(prefix)
            ),
            "foreign_keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ),
        }
    return found


def _expected(store: SqlStore) -> dict[str, Any]:
    """The same description, from the metadata in ``schema.py``."""
    expected: dict[str, Any] = {}
    for table in store.tables.metadata.sorted_tables:
        expected[table.name] = {
            "columns": {c.name: c.nullable for c in table.columns},
            "primary_key": [c.name for c in table.primary_key.columns],
            "indexes": sorted(
                (str(i.name), tuple(c.name for c in i.columns)) for i in table.indexes
            ),
            "foreign_keys": sorted(
                ((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys
            ),
        }
    return expected


async def test_fresh_upgrade_equals_the_model(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        described = await conn.run_sync(_describe, "tf_")

        def autogenerate_diff(sync: sa.Connection) -> list[Any]:
            # Alembic's autogenerate compares types, nullability, indexes and keys too
            ctx = MigrationContext.configure(
                sync, opts={"version_table": "tf_alembic_version", "compare_type": True}
            )
            return list(compare_metadata(ctx, store.tables.metadata))

        diff = await conn.run_sync(autogenerate_diff)
    assert described == _expected(store)
    assert diff == []


async def test_second_open_is_a_no_op(db_url: str, store: SqlStore) -> None:
    await store.save_dag(make_dag())
    revision = await store.current_revision()
    assert revision == SqlStore.head_revision()
    again = SqlStore(db_url)
    await again.open()
    try:
        assert await again.current_revision() == revision
        assert (await again.get_dag("build")).version == 1
    finally:
        await again.close()


async def test_concurrent_opens_are_safe(db_url: str) -> None:
    stores = [SqlStore(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        for s in stores:
            assert await s.current_revision() == SqlStore.head_revision()
        await stores[0].save_dag(make_dag())
        assert (await stores[2].get_dag("build")).version == 1
    finally:
        for s in stores:
            await s.close()


_OPEN_IN_A_PROCESS = """
import asyncio, sys
from tideflow.store.sql import SqlStore

async def main() -> None:
    store = SqlStore(sys.argv[1])
    await store.open()
    print(await store.current_revision())
    await store.close()

asyncio.run(main())
"""


async def test_concurrent_opens_from_processes_are_safe(db_url: str) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _OPEN_IN_A_PROCESS,
            db_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = [await p.communicate() for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip() == SqlStore.head_revision()


async def test_open_without_migrate_needs_a_schema(db_url: str) -> None:
    store = SqlStore(db_url)
    with pytest.raises(SchemaError, match="tideflow db upgrade"):
        await store.open(migrate=False)
    assert await store.upgrade() == SqlStore.head_revision()
    await store.close()
    await store.open(migrate=False)
    try:
        assert await store.current_revision() == SqlStore.head_revision()
    finally:
        await store.close()


async def test_a_newer_schema_is_refused(db_url: str, store: SqlStore) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE tf_alembic_version SET version_num = '9999_future'"))
    for migrate in (True, False):
        newer = SqlStore(db_url)
        with pytest.raises(SchemaError, match="upgrade tideflow"):
            await newer.open(migrate=migrate)
        await newer.close()


async def test_table_prefixes_isolate_deployments(db_url: str) -> None:
    blue, green = SqlStore(db_url, table_prefix="blue_"), SqlStore(db_url, table_prefix="green_")
    await blue.open()
    await green.open()
    try:
        await blue.save_dag(make_dag("only-blue"))
        await green.save_dag(make_dag("only-green"))
        await blue.create_instance(make_instance("i1", dag_id="only-blue"), make_tasks("i1", ["a"]))
        # the same instance id is free in the other deployment
        await green.create_instance(make_instance("i1", dag_id="only-green"), [])
        assert [d.id for d in await blue.list_dags()] == ["only-blue"]
        assert [d.id for d in await green.list_dags()] == ["only-green"]
        assert len((await blue.get_instance("i1")).tasks) == 1
        assert (await green.get_instance("i1")).tasks == []
        assert await blue.current_revision() == await green.current_revision()
        async with blue.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert {"blue_alembic_version", "green_alembic_version"} <= set(tables)
        assert "tf_dags" not in tables
    finally:
        await blue.close()
        await green.close()


def test_a_bad_prefix_is_an_input_error() -> None:
    for prefix in ("1abc", "drop table;", "x" * 30, "a-b"):
        with pytest.raises(InputError, match="table prefix"):
            SqlStore("sqlite:///:memory:", table_prefix=prefix)


async def test_task_outputs_migration_keeps_existing_rows(db_url: str) -> None:
    """0004 adds the output column to a database that already holds tasks (and goes back)."""
    from alembic import command

    from tideflow.store.sql.migrate import alembic_config

    store = SqlStore(db_url)
    await store.open()
    try:
        await store.save_dag(make_dag())
        tasks = make_tasks("i1", ["a", "b"])
        tasks[0].output = {"id": "c-1"}
        await store.create_instance(make_instance("i1"), tasks)
        async with store.engine.begin() as conn:
            await conn.run_sync(
                lambda c: command.downgrade(alembic_config("tf_", c), "0003"))
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in sa.inspect(c).get_columns("tf_task_instances")})
        assert "output" not in columns
    finally:
        await store.close()
    again = SqlStore(db_url)
    await again.open()  # upgrades to the head again, over the rows written before
    try:
        found = await again.get_instance("i1")
        assert [(t.task_id, t.output) for t in found.tasks] == [("a", None), ("b", None)]
        found.tasks[1].output = {"n": [1, 2]}
        await again.write([], [found.tasks[1]])
        assert (await again.get_instance("i1")).tasks[1].output == {"n": [1, 2]}
    finally:
        await again.close()


async def test_decisions_migration_keeps_existing_rows(db_url: str) -> None:
    """0006 adds an approval's decision, a queued command's payload and an instance's
    compensation state to a database that already holds rows (and goes back without losing
    them)."""
    from alembic import command

    from tideflow.store.sql.migrate import alembic_config

    store = SqlStore(db_url)
    await store.open()
    try:
        await store.save_dag(make_dag())
        tasks = make_tasks("i1", ["a", "b"])
        tasks[0].decision = {"decision": "approved", "inputs": {"n": 1}}
        inst = make_instance("i1")
        inst.compensation = "done"
        await store.create_instance(inst, tasks)
        async with store.engine.begin() as conn:
            await conn.run_sync(
                lambda c: command.downgrade(alembic_config("tf_", c), "0005"))
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in sa.inspect(c).get_columns("tf_task_instances")})
        assert "decision" not in columns and "output" in columns
    finally:
        await store.close()
    again = SqlStore(db_url)
    await again.open()  # upgrades to the head again, over the rows written before
    try:
        found = await again.get_instance("i1")
        assert [(t.task_id, t.decision) for t in found.tasks] == [("a", None), ("b", None)]
        assert found.compensation is None
        found.compensation = "running"
        found.tasks[1].decision = {"decision": "rejected"}
        await again.write([found], [found.tasks[1]])
        back = await again.get_instance("i1")
        assert back.compensation == "running" and back.tasks[1].decision == {
            "decision": "rejected"}
    finally:
        await again.close()
