"""Runs go on while the store fails now and then: errors before a call, errors after a call
that went through (committed, reply lost), and delays, on each backend; then the faults stop
and every run must finish with each task recorded and executed exactly once per attempt."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tideflow import Engine, EngineSettings
from tideflow.errors import StoreError
from tideflow.states import InstanceStatus, TaskStatus
from tideflow.store import Fault, FaultPlan, FaultyStore
from tideflow.store.records import InstanceRecord, TaskRecord
from tideflow.store.url import make_store

from .workload import Executions, check_all, dags, submit, wait_all_final

PLAN = FaultPlan(
    default=Fault(error_before=0.1, error_after=0.1, delay=0.2, max_delay_secs=0.02),
    # the group commit carries every result: fault it hardest
    methods={"write": Fault(error_before=0.15, error_after=0.2, delay=0.2, max_delay_secs=0.03)},
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
    store = await _run_with_faults(sqlite_url, runs=24, seed=1, fault_secs=1.0, caplog=caplog)
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


async def test_store_write_repeated_after_a_lost_reply(db_url: str) -> None:
    """The group commit's retry of a write that did commit: its new instance is found
    inserted already and is written as an update, with the state it has now."""
    store = make_store(db_url)
    await store.open()
    try:
        now = datetime.now(UTC)
        inst = InstanceRecord(id="01TESTLOSTREPLY", dag_id="chain", dag_version=1,
                              status=InstanceStatus.SCHEDULED, trigger="manual", vars={},
                              created_at=now, updated_at=now, tags={"team": "a"})
        inst.tasks = [TaskRecord(instance_id=inst.id, task_id=t, name=t, action_name="work")
                      for t in ("a", "b")]
        await store.write([], [], new_instances=[inst])
        inst.status = InstanceStatus.RUNNING
        inst.tasks[0].status = TaskStatus.SUCCESS
        await store.write([], [], new_instances=[inst])
        got = await store.get_instance(inst.id)
        assert got.status == InstanceStatus.RUNNING
        assert [(t.task_id, t.status) for t in got.tasks] == [
            ("a", TaskStatus.SUCCESS), ("b", TaskStatus.INIT)]
        assert got.tags == {"team": "a"}
        # a fenced writer (a cluster node) leaves the inserted row to the Dispatcher
        inst.status = InstanceStatus.FAILED
        assert await store.write([], [], new_instances=[inst], owner="w1") == set()
        assert (await store.get_instance(inst.id)).status == InstanceStatus.RUNNING
        assert len(await store.list_instances()) == 1
    finally:
        await store.close()


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


async def test_run_while_the_database_is_down(sqlite_url: str) -> None:
    """Before a run is accepted (its DAG cannot be read) the caller gets StoreError and
    nothing is created; once accepted, the call waits for the database instead of failing."""
    executions = Executions()
    store = FaultyStore(make_store(sqlite_url), FaultPlan(default=Fault(error_before=1.0)))
    store.enabled = False
    async with Engine(store, actions=executions.registry(),
                      settings=EngineSettings(node_id="down")) as engine:
        await engine.register_dag(dags()[0])
        store.enabled = True
        with pytest.raises(StoreError, match="injected"):
            await engine.run_dag("chain")
        assert await store.inner.list_instances() == []

        store.plan = FaultPlan(methods={"write": Fault(error_before=1.0)})
        pending = asyncio.ensure_future(engine.run_dag("chain"))
        await asyncio.sleep(0.5)
        assert not pending.done(), "the run gave up while the database was away"
        store.enabled = False
        inst = await asyncio.wait_for(pending, 10)
        await engine.wait_for(inst.id, timeout=20)
        listed = await store.inner.list_instances()
        check_all([await store.inner.get_instance(inst.id)], executions, all_instances=listed)


@pytest.mark.postgres
async def test_faults_cluster_node(postgres_url: str) -> None:
    """A cluster worker that is also the leader: the Keeper's heartbeats and leases, the
    Dispatcher's assignments and the claim loop are faulted as well as the state writes."""
    from tideflow.cluster.node import ClusterSettings

    executions = Executions()
    store = FaultyStore(make_store(postgres_url), PLAN, seed=4)
    store.enabled = False
    settings = EngineSettings(node_id="faulty-worker", cluster=ClusterSettings(
        role="worker", unhealthy_secs=3.0, heartbeat_secs=0.5, lease_secs=2.0))
    async with Engine(store, actions=executions.registry(), settings=settings) as engine:
        for d in dags():
            await engine.register_dag(d)
        async with asyncio.timeout(20):
            while not any(n.is_leader for n in await engine.list_nodes()):
                await asyncio.sleep(0.1)
        store.enabled = True
        ids = await submit(engine, 24, random.Random(4), secs=(0.0, 0.02))
        await asyncio.sleep(1.0)
        store.enabled = False
        # well within PostgreSQL's 30 s catch-up: a failed pass must be retried soon
        await wait_all_final(store.inner, ids, timeout=15)
        assert store.injected[("assign", "after")] + store.injected[("write", "after")] > 0
        instances = [await store.inner.get_instance(i) for i in ids]
        everything = await store.inner.list_instances(limit=10_000)
    check_all(instances, executions, all_instances=everything)
