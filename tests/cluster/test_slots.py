"""A worker's free slots as the Dispatcher counts them, with real `tideflow server` processes
on MariaDB and PostgreSQL: what is assigned and not yet started counts, across dispatch
rounds; tasks that hold no slot (`wait`, `approval`) do not."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow import InstanceStatus

from .backends import BACKENDS, backend_url
from .harness import REPO, Cluster, ready, wait_until

pytestmark = pytest.mark.cluster

ONE = {"id": "one", "vars": {"sleep": {"defaultValue": "0"}},
       "tasks": [{"id": "first", "actionName": "noop", "params": {"sleep": "{{sleep}}"}}]}


@pytest.fixture(params=BACKENDS)
def solo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """One worker with one execution slot."""
    url = backend_url(request)
    c = Cluster(url, tmp_path, unhealthy_secs=2.0)
    c.start("solo", "worker", "--concurrency", "1")
    yield c
    c.stop_all()


def _cli(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEFLOW_")}
    return subprocess.run([sys.executable, "-m", "tideflow.cli.main", *args, "--db", c.db_url],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


async def test_a_burst_waits_at_the_dispatcher_and_leaves_by_priority(solo: Cluster) -> None:
    async with solo.client() as client:
        await ready(client, 1)
        await client.register_dag(ONE)
        gate = solo.tmp / "gate"
        gate.touch()
        await client.register_dag({"id": "held", "vars": {"gate": {"defaultValue": ""}},
                                   "tasks": [{"id": "first", "actionName": "hold_while",
                                              "params": {"path": "{{gate}}"}}]})
        # back to back, to an idle one-slot worker: one of them takes the slot, the others
        # are not handed to it but wait, so that a later, higher priority run goes next
        low = [(await client.run_dag("held", {"gate": str(gate)})).id]
        low += [(await client.run_dag("one")).id for _ in range(4)]

        async def one_started() -> bool:
            return (any(iid == low[0] for _, iid, _, _ in solo.executions())
                    and (await client.get_instance(low[0])).status == InstanceStatus.RUNNING)

        await wait_until(one_started, 30, "the first run started", step=0.05)
        insts = {i.id: i for i in await client.list_instances(limit=100)}
        for iid in low[1:]:
            assert insts[iid].worker is None, "a busy worker was given a waiting run"
            assert insts[iid].status == InstanceStatus.INIT
            assert insts[iid].reason == "waiting for a worker: every matching worker is busy"
        done = await asyncio.to_thread(_cli, solo, "dag", "run", "one", "--priority", "10",
                                       "--json")
        assert done.returncode == 0, done.stderr
        high = json.loads(done.stdout)["id"]
        gate.unlink()  # the first run ends: its slot frees
        for iid in [*low, high]:
            ended = await client.wait_for(iid, timeout=60, settled=False)
            assert ended.status == InstanceStatus.SUCCESS, ended.reason
    started = [iid for _, iid, _, _ in solo.executions()]
    assert started[0] == low[0]
    assert started[1] == high, started
    assert started[2:] == low[1:], "runs of one priority leave oldest first"


async def test_a_wait_task_holds_no_slot(solo: Cluster) -> None:
    async with solo.client() as client:
        await ready(client, 1)
        await client.register_dag({"id": "pause-a-while", "tasks": [
            {"id": "nap", "actionName": "wait", "params": {"waitingTime": "6s"}},
            {"id": "after", "actionName": "noop", "dependOn": ["nap"]}]})
        await client.register_dag(ONE)
        napping = await client.run_dag("pause-a-while")

        async def waiting() -> bool:
            inst = await client.get_instance(napping.id)
            return inst.status == InstanceStatus.RUNNING and inst.tasks[0].status == "running"

        await wait_until(waiting, 30, "the wait task running", step=0.05)
        # the worker's only slot is free: a second run starts while the wait goes on
        other = await client.run_dag("one")
        ended = await client.wait_for(other.id, timeout=5, settled=False)
        assert ended.status == InstanceStatus.SUCCESS, ended.reason
        assert (await client.get_instance(napping.id)).status == InstanceStatus.RUNNING
        nodes = {n.node_id: n for n in await client.list_nodes()}
        assert nodes["solo"].running == 0, "a wait was counted as holding a slot"
        ended = await client.wait_for(napping.id, timeout=30, settled=False)
        assert ended.status == InstanceStatus.SUCCESS, ended.reason


def test_priority_is_checked(solo: Cluster) -> None:
    for bad in ("high", "1000001", "-1000001"):
        done = _cli(solo, "dag", "run", "one", "--priority", bad)
        assert done.returncode == 2, (bad, done.stdout, done.stderr)
        assert "--priority" in done.stderr
