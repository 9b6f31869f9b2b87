"""Schedules and run limits across real server processes: every tick fires exactly once while
the leader is killed, and maxActiveRuns holds across nodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tideflow.states import InstanceStatus

from .backends import BACKENDS, backend_url
from .harness import Cluster, leader_of, ready, wait_until

pytestmark = pytest.mark.cluster

ACTIVE = {InstanceStatus.SCHEDULED, InstanceStatus.RUNNING, InstanceStatus.PAUSED,
          InstanceStatus.BLOCKED}


@pytest.fixture(params=BACKENDS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    url = backend_url(request)
    c = Cluster(url, tmp_path, unhealthy_secs=2.0)
    for name in ("w1", "w2", "w3"):
        c.start(name)
    yield c
    c.stop_all()


async def test_every_tick_once_while_the_leader_dies(cluster: Cluster) -> None:
    async with cluster.client() as client:
        await ready(client, 3)
        await client.register_dag({
            "id": "every-second", "cron": "* * * * * *", "catchup": "all", "maxCatchup": 100,
            "tasks": [{"id": "a", "actionName": "noop"}]})
        for _ in range(2):
            await asyncio.sleep(3)
            leader = await leader_of(client)
            assert leader is not None
            cluster.kill(leader)
            await wait_until(lambda old=leader: _other_leader(client, old), 20,  # type: ignore[misc]
                             "a new leader")
            cluster.start(leader)
        await asyncio.sleep(3)
        await client.set_dag_status("every-second", "stopped")
        await asyncio.sleep(2)
        found = await client.list_instances(dag_id="every-second", limit=1000)
        ticks = sorted(i.cron_tick for i in found if i.cron_tick is not None)
        assert len(ticks) == len(found) >= 8
        assert len(set(ticks)) == len(ticks), "a tick fired twice"
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert all(g == timedelta(seconds=1) for g in gaps), f"a tick was missed: {gaps}"
        assert all(i.trigger == "cron" for i in found)


async def _other_leader(client: object, old: str) -> str | None:
    now = await leader_of(client)  # type: ignore[arg-type]
    return now if now and now != old else None


async def test_max_active_runs_across_nodes(cluster: Cluster) -> None:
    async with cluster.client() as client:
        await ready(client, 3)
        await client.register_dag({
            "id": "limited", "maxActiveRuns": 2,
            "tasks": [{"id": "a", "actionName": "noop", "params": {"sleep": "0.3"}},
                      {"id": "b", "actionName": "noop", "dependOn": ["a"],
                       "params": {"sleep": "0.2"}}]})
        ids = [(await client.run_dag("limited")).id for _ in range(10)]
        peak = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = [i for i in await client.list_instances(dag_id="limited", limit=100)]
            peak = max(peak, sum(1 for i in listed if i.status in ACTIVE))
            if all(i.status == InstanceStatus.SUCCESS for i in listed) and len(listed) == 10:
                break
            await asyncio.sleep(0.05)
        done = [await client.get_instance(i) for i in ids]
        assert all(d.status == InstanceStatus.SUCCESS for d in done)
        assert peak == 2
        assert len({d.worker for d in done}) >= 2


async def test_action_max_concurrency_across_nodes(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "fragile.log"
    async with cluster.client() as client:
        await ready(client, 3)
        await client.register_dag({
            "id": "fragile", "tasks": [
                {"id": f"t{i}", "actionName": "fragile", "params": {"log": str(log)}}
                for i in range(4)]})
        ids = [(await client.run_dag("fragile")).id for _ in range(3)]
        for i in ids:
            done = await client.wait_for(i, timeout=60, settled=False)
            assert done.status == InstanceStatus.SUCCESS, done.reason
    events = [line.split() for line in log.read_text().splitlines()]
    assert len(events) == 24
    assert len({e[2] for e in events}) >= 2  # it ran on several workers
    depth = 0
    for kind, _, _ in sorted(events, key=lambda e: float(e[1])):
        depth += 1 if kind == "start" else -1
        assert depth <= 1, "two attempts of a max_concurrency=1 action overlapped"


@pytest.mark.postgres
async def test_priority_first_when_workers_are_saturated(postgres_url: str,
                                                         tmp_path: Path) -> None:
    c = Cluster(postgres_url, tmp_path, unhealthy_secs=2.0)
    c.start("solo", "worker", "--concurrency", "1")
    try:
        async with c.client() as client:
            await ready(client, 1)
            await client.register_dag({
                "id": "one", "vars": {"sleep": {"defaultValue": "0"}},
                "tasks": [{"id": "first", "actionName": "noop",
                           "params": {"sleep": "{{sleep}}"}}]})
            blocker = await client.run_dag("one", {"sleep": "3"})

            async def busy() -> bool:
                # the worker has told the leader its only slot is taken
                nodes = await client.list_nodes()
                return any(n.node_id == "solo" and n.running >= 1 for n in nodes)

            await wait_until(busy, 30, "the blocker running", step=0.05)
            assert (await client.get_instance(blocker.id)).status == InstanceStatus.RUNNING
            low = [(await client.run_dag("one", priority=0)).id for _ in range(3)]
            high = (await client.run_dag("one", priority=10)).id
            for iid in [*low, high]:
                done = await client.wait_for(iid, timeout=90, settled=False)
                assert done.status == InstanceStatus.SUCCESS
        started = [iid for _, iid, tid, _ in c.executions() if tid == "first"]
        assert started.index(high) < min(started.index(i) for i in low), started
    finally:
        c.stop_all()
