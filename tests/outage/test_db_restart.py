"""An embedded engine keeps going through real database outages: PostgreSQL restarted (fast and
immediate shutdown), MariaDB killed with SIGKILL and started again, and every connection of the
engine cut by the server. Once the database is back every run finishes, each task executed and
recorded once per attempt, and the outage is logged once rather than once per retry."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dbservers import PrivateMariaDB, PrivatePostgres, StopMode
from tideflow import Engine, EngineSettings
from tideflow.store.url import make_store

from .workload import Executions, check_all, dags, submit, wait_all_final

RUNS = 20
#: how long the database stays away: long enough that writes fail and are retried
DOWN_SECS = 1.0


async def _run_through(url: str, outage: Callable[[], Awaitable[Any]], seed: int,
                       caplog: pytest.LogCaptureFixture, *, writes_fail: bool = True) -> None:
    caplog.set_level(logging.INFO, "tideflow")
    executions = Executions()
    engine = Engine.from_url(url, actions=executions.registry(),
                             settings=EngineSettings(node_id="embedded"))
    async with engine:
        for d in dags():
            await engine.register_dag(d)
        ids = await submit(engine, RUNS, random.Random(seed), secs=(0.1, 0.5))
        await asyncio.sleep(0.4)  # tasks are running and writing
        await outage()
        await asyncio.wait_for(asyncio.gather(*(engine.wait_for(i, timeout=60) for i in ids)),
                               90)
    store = make_store(url)
    await store.open()
    try:
        instances = await wait_all_final(store, ids, timeout=10)
        check_all(instances, executions, all_instances=await store.list_instances(limit=1000))
    finally:
        await store.close()
    failing = [r for r in caplog.records if "state writes failing" in r.getMessage()]
    if writes_fail:
        assert failing, "the outage did not reach the state writes (nothing was tested)"
    if failing:
        assert any("state writes resumed" in r.getMessage() for r in caplog.records)
    assert len(failing) <= 3, [r.getMessage() for r in failing]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restart(private_postgres: PrivatePostgres, mode: StopMode,
                                caplog: pytest.LogCaptureFixture) -> None:
    pg = private_postgres
    url = pg.create_database("tf")

    async def outage() -> None:
        await asyncio.to_thread(pg.stop, mode)
        await asyncio.sleep(DOWN_SECS)
        await asyncio.to_thread(pg.start)

    await _run_through(url, outage, seed=11, caplog=caplog)


async def test_mariadb_killed_and_restarted(private_mariadb: PrivateMariaDB,
                                            caplog: pytest.LogCaptureFixture) -> None:
    db = private_mariadb
    url = db.create_database("tf")

    async def outage() -> None:
        await asyncio.to_thread(db.kill)
        await asyncio.sleep(DOWN_SECS)
        await asyncio.to_thread(db.start)

    await _run_through(url, outage, seed=12, caplog=caplog)


async def test_postgres_connections_cut(postgres_url: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """The server ends every backend of the engine's database (the shared server, which
    itself stays up): three times, a moment apart."""
    import asyncpg

    from tideflow.store.url import parse_url

    target = parse_url(postgres_url).url

    async def outage() -> None:
        conn = await asyncpg.connect(host=target.host, port=target.port, user=target.username,
                                     database=target.database)
        try:
            for _ in range(3):
                cut = await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                assert cut is not None
                await asyncio.sleep(0.3)
        finally:
            await conn.close()

    # a connection the server closed is usually noticed before it is handed out (the pool
    # replaces it), so the writes need not fail at all: what must hold is the outcome
    await _run_through(postgres_url, outage, seed=13, caplog=caplog, writes_fail=False)
