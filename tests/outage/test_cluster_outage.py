"""Two real ``tideflow server`` workers on a private PostgreSQL that is restarted in the middle
of their runs: every run finishes, each task recorded once, and both processes are still
running afterwards (an outage is waited out, not a reason to exit)."""

from __future__ import annotations

import asyncio
import collections
import logging
from pathlib import Path

import pytest

from cluster.harness import Cluster, all_final, ready
from dbservers import PrivatePostgres
from tideflow import Engine, InstanceRecord, InstanceStatus
from tideflow.errors import StoreError
from tideflow.states import TaskStatus

pytestmark = pytest.mark.cluster

RUNS = 16
TASKS_PER_RUN = 10  # the w1 DAG of tests/cluster/dags


async def _final_or_none(client: Engine, ids: list[str]) -> list[InstanceRecord] | None:
    try:
        return await all_final(client, ids)
    except StoreError:
        return None  # the client's own reads fail while the database is away


async def test_cluster_rides_out_a_postgres_restart(private_postgres: PrivatePostgres,
                                                    tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "tideflow")
    pg = private_postgres
    url = pg.create_database("tf")
    c = Cluster(url, tmp_path, unhealthy_secs=3.0)
    try:
        c.start("w1")
        c.start("w2")
        async with c.client() as client:
            await ready(client, 2)
            ids = [(await client.run_dag("w1", {"sleep": "0.4"})).id for _ in range(RUNS)]
            await asyncio.sleep(0.5)  # runs are in flight on both workers
            await asyncio.to_thread(pg.stop, "fast")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(pg.start)
            deadline = asyncio.get_running_loop().time() + 60
            done = None
            while done is None:
                assert asyncio.get_running_loop().time() < deadline, \
                    "runs not final 60s after the restart:\n" + c.log_text("w1")[-3000:]
                await asyncio.sleep(0.3)
                done = await _final_or_none(client, ids)
            detailed = [await client.get_instance(i) for i in ids]
        alive = {n: p.poll() is None for n, p in c.procs.items()}
        assert all(alive.values()), f"a node exited: {alive}\n{c.log_text('w1')[-2000:]}"
    finally:
        c.stop_all()

    assert [i.status for i in done] == [InstanceStatus.SUCCESS] * RUNS, \
        [(i.id, i.status.value, i.reason) for i in done]
    for inst in detailed:
        assert len(inst.tasks) == TASKS_PER_RUN
        for t in inst.tasks:
            assert t.status == TaskStatus.SUCCESS, (inst.id, t.task_id, t.status, t.reason)
            # a node judged dead would have its attempts interrupted and run again: with an
            # outage shorter than the liveness window, every task is attempted once
            assert t.attempts == 1, (inst.id, t.task_id, t.attempt_history)
    runs = collections.Counter((iid, tid) for _, iid, tid, _ in c.executions() if iid in ids)
    assert len(runs) == RUNS * TASKS_PER_RUN, "a task never ran"
    assert max(runs.values()) == 1, [k for k, n in runs.items() if n > 1][:5]
    logs = c.log_text("w1") + c.log_text("w2")
    assert "Traceback" not in logs, logs[-3000:]
    assert "state writes failing" in logs, "the restart did not reach the workers' writes"
    assert "state writes resumed" in logs
