"""Runs go on while the store fails now and then: errors before a call, errors after a call
that went through (committed, reply lost), and delays, on each backend; then the faults stop
and every run must finish with each task recorded and executed exactly once per attempt."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest

from tideflow import Engine, EngineSettings
from tideflow.errors import StoreError
from tideflow.store import Fault, FaultPlan, FaultyStore
from tideflow.store.url import make_store

from .workload import Executions, check_all, dags, submit, wait_all_final

PLAN = FaultPlan(
    default=Fault(error_before=0.1, error_after=0.1, delay=0.2, max_delay_secs=0.02),
    # the group commit carries every result: fault it hardest
    methods={"write": Fault(error_before=0.2, error_after=0.25, delay=0.2, max_delay_secs=0.03)},
)


async def _run_with_faults(url: str, *, runs: int, seed: int, fault_secs: float,
                           caplog: pytest.LogCaptureFixture) -> FaultyStore:
    executions = Executions()
    store = FaultyStore(make_store(url), PLAN, seed=seed)
    store.enabled = False  # a clean start: recovery and registration are not under test here
    engine = Engine(store, actions=executions.registry(),
                    settings=EngineSettings(node_id="faulty", command_poll_busy_secs=0.05))
    async with engine:
        for d in dags():
            await engine.register_dag(d)
        store.enabled = True
        ids = await submit(engine, runs, random.Random(seed), secs=(0.0, 0.02))
        await asyncio.sleep(fault_secs)
        store.enabled = False  # the database is back
        await wait_all_final(store.inner, ids, timeout=60)
        for runner_id in ids:  # the engine's own view agrees with the database
            assert (await engine.get_instance(runner_id)).status.is_final
    assert store.injected_total("after") > 0 and store.injected_total("before") > 0, \
        store.injected
    # read back through a fresh store: nothing is served from the engine's memory
    fresh = make_store(url)
    await fresh.open()
    try:
        instances = [await fresh.get_instance(i) for i in ids]
        everything = await fresh.list_instances(limit=10_000)
    finally:
        await fresh.close()
    check_all(instances, executions, all_instances=everything)
    # one warning when the writes start failing, not one per retry
    starts = [r for r in caplog.records if "state writes failing" in r.getMessage()]
    assert starts and len(starts) <= store.injected[("write", "before")] + \
        store.injected[("write", "after")]
    return store


async def test_faults_sqlite(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "tideflow")
    store = await _run_with_faults(sqlite_url, runs=30, seed=1, fault_secs=1.0, caplog=caplog)
    # the ambiguous case hit the group commit's inserts of new instances too
    assert store.injected[("write", "after")] > 0


@pytest.fixture(params=[pytest.param("mysql", marks=pytest.mark.mysql),
                        pytest.param("postgresql", marks=pytest.mark.postgres)])
def server_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(
        "mysql_url" if request.param == "mysql" else "postgres_url")
    return url


async def test_faults_server(server_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "tideflow")
    await _run_with_faults(server_url, runs=24, seed=2, fault_secs=1.0, caplog=caplog)


async def test_idempotent_run_survives_a_lost_reply(sqlite_url: str) -> None:
    """create_instance commits but its reply is lost: the run still starts, once."""
    executions = Executions()
    plan = FaultPlan(methods={"create_instance": Fault(error_after=1.0)})
    store = FaultyStore(make_store(sqlite_url), plan, seed=3)
    async with Engine(store, actions=executions.registry(),
                      settings=EngineSettings(node_id="keyed")) as engine:
        await engine.register_dag(dags()[0])
        inst = await asyncio.wait_for(
            engine.run_dag("chain", idempotency_key="k1", wait=30), 40)
        assert store.injected[("create_instance", "after")] == 1
        again = await engine.run_dag("chain", idempotency_key="k1", wait=30)
        assert again.id == inst.id
        listed = await engine.list_instances()
        check_all([await store.inner.get_instance(inst.id)], executions, all_instances=listed)


async def test_plan_validation_and_switch(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="between 0 and 1"):
        Fault(error_before=1.5)
    store = FaultyStore(make_store(sqlite_url), FaultPlan(default=Fault(error_before=1.0)))
    await store.open()  # open is not faulted by the default entry
    try:
        with pytest.raises(StoreError, match="injected"):
            await store.list_dags()
        store.enabled = False
        assert await store.list_dags() == []
        assert store.injected[("list_dags", "before")] == 1
        assert store.calls["list_dags"] == 2
    finally:
        await store.close()
