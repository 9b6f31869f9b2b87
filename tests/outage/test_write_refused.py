"""Writes the database will always refuse are not an outage: a task whose result is too large
to store fails with a reason naming the limit, the instance ends `failed`, the write is never
retried, and the other instances go on. Per backend: the engine's own limit (max_value_bytes)
caught before the write, and — with that limit raised past the database's own — the database's
limit (MariaDB's max_allowed_packet, SQLite's SQLITE_MAX_LENGTH) named when it refuses."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbservers import PrivateMariaDB, PrivatePostgres
from tideflow import ActionContext, ActionRegistry, Engine, EngineSettings, InstanceStatus
from tideflow.store.url import make_store

MIB = 1024 * 1024


def _registry() -> ActionRegistry:
    registry = ActionRegistry()

    async def put(ctx: ActionContext, params: Any) -> None:
        ctx.share_data["blob"] = "x" * int(params["size"])

    async def ok(ctx: ActionContext, params: Any) -> None:
        ctx.share_data["ok"] = "yes"

    registry.add_function("put", put)
    registry.add_function("ok", ok)
    return registry


DAG = {"id": "big", "vars": {"size": {"defaultValue": "0"}}, "tasks": [
    {"id": "put", "actionName": "put", "params": {"size": "{{size}}"}},
    {"id": "after", "actionName": "ok", "dependOn": ["put"]},
    {"id": "side", "actionName": "ok"},
]}
SMALL = {"id": "small", "tasks": [{"id": "a", "actionName": "ok"}]}


async def _refused_run(url: str, size: int, limit_named: str,
                       caplog: pytest.LogCaptureFixture, *, max_value_bytes: int = MIB,
                       tweak: Any = None) -> None:
    caplog.set_level(logging.INFO, "tideflow")
    settings = EngineSettings(node_id="embedded", max_value_bytes=max_value_bytes,
                              max_share_data_bytes=max(4 * MIB, 2 * max_value_bytes))
    async with Engine.from_url(url, actions=_registry(), settings=settings) as engine:
        if tweak is not None:
            tweak(engine)
        await engine.register_dag(DAG)
        await engine.register_dag(SMALL)
        big = await engine.run_dag("big", {"size": str(size)})
        small = [await engine.run_dag("small") for _ in range(5)]
        final = await asyncio.wait_for(engine.wait_for(big.id, timeout=60), 60)
        others = [await engine.wait_for(s.id, timeout=30) for s in small]
    assert final.status == InstanceStatus.FAILED, final
    put = next(t for t in final.tasks if t.task_id == "put")
    assert limit_named in (put.reason or ""), put.reason
    assert all(o.status == InstanceStatus.SUCCESS for o in others)
    store = make_store(url)
    await store.open()
    try:
        stored = await store.get_instance(big.id)
    finally:
        await store.close()
    assert stored.status == InstanceStatus.FAILED
    assert limit_named in (stored.tasks[0].reason or "")
    assert "blob" not in stored.share_data
    assert {t.task_id: t.status.value for t in stored.tasks} == {
        "put": "failed", "after": "init", "side": "success"}
    # refused, not retried as an outage
    assert not [r for r in caplog.records if "state writes failing" in r.getMessage()]


async def test_sqlite_value_over_the_engine_limit(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    await _refused_run(f"sqlite:///{tmp_path / 't.db'}", 2 * MIB, "max_value_bytes", caplog)


async def test_sqlite_value_over_sqlites_own_limit(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    def lower_sqlite_limit(engine: Engine) -> None:
        # SQLite's length limit, lowered to 1 MB on the connection the state writes use
        conn: sqlite3.Connection = engine.store._direct._connection()  # type: ignore[attr-defined]
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000_000)

    await _refused_run(f"sqlite:///{tmp_path / 't.db'}", 2 * MIB, "SQLITE_MAX_LENGTH", caplog,
                       max_value_bytes=8 * MIB, tweak=lower_sqlite_limit)


async def test_mariadb_value_over_max_allowed_packet(private_mariadb: PrivateMariaDB,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    private_mariadb.sql("SET GLOBAL max_allowed_packet = 1048576")
    url = private_mariadb.create_database("tf")
    # the engine's limit raised past the server's: the server's is named
    await _refused_run(url, 2 * MIB, "max_allowed_packet", caplog, max_value_bytes=8 * MIB)


async def test_mariadb_value_over_the_engine_limit(private_mariadb: PrivateMariaDB,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    private_mariadb.sql("SET GLOBAL max_allowed_packet = 1048576")
    url = private_mariadb.create_database("tf")
    await _refused_run(url, 2 * MIB, "max_value_bytes", caplog)


async def test_postgres_value_over_the_engine_limit(private_postgres: PrivatePostgres,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    url = private_postgres.create_database("tf")
    await _refused_run(url, 2 * MIB, "max_value_bytes", caplog)
