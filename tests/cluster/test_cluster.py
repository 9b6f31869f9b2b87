"""Real `tideflow server` processes (3 workers + 1 watcher) on MariaDB and PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow import InstanceStatus, TaskStatus
from tideflow.clock import utcnow

from .backends import BACKENDS, backend_url
from .harness import Cluster, all_final, leader_of, ready, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture(params=BACKENDS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    url = backend_url(request)
    c = Cluster(url, tmp_path)
    for name in ("w1", "w2", "w3"):
        c.start(name)
    c.start("watch", role="watcher")
    yield c
    c.stop_all()


def _check_executions(c: Cluster, ids: list[str], killed: set[str]) -> None:
    """Every task ran; a task ran more than once only where an attempt's node was killed."""
    runs = collections.Counter((iid, tid) for _, iid, tid, _ in c.executions() if iid in ids)
    assert len(runs) == len(ids) * 10, "a task never ran"
    by_task: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for node, iid, tid, _ in c.executions():
        by_task[(iid, tid)].add(node)
    for key, count in runs.items():
        if count > 1:
            assert by_task[key] & killed, f"{key} ran {count} times with no node killed"


async def test_one_leader_and_runs_spread(cluster: Cluster) -> None:
    async with cluster.client() as client:
        leader = await wait_until(lambda: leader_of(client), 30, "a leader")

        async def everyone() -> dict[str, object] | None:
            nodes = {n.node_id: n for n in await client.list_nodes() if n.alive}
            return nodes if {"w1", "w2", "w3", "watch"} <= set(nodes) else None

        nodes = await wait_until(everyone, 30, "every node registered")
        watcher = nodes["watch"]
        assert watcher.role == "watcher" and not watcher.is_leader  # type: ignore[attr-defined]
        assert leader in ("w1", "w2", "w3")
        await ready(client, 3)
        insts = [await client.run_dag("w1", {"sleep": "0.05"}) for _ in range(60)]
        ids = [i.id for i in insts]
        done = await wait_until(lambda: all_final(client, ids), 120, "all runs final")
        assert all(i.status == InstanceStatus.SUCCESS for i in done)
        workers = collections.Counter(i.worker for i in done)
        assert len(workers) >= 2, workers
        assert set(workers) <= {"w1", "w2", "w3"}
    _check_executions(cluster, ids, killed=set())
    assert "leadership" in cluster.log_text(leader)


async def test_kill_leader_mid_runs(cluster: Cluster) -> None:
    async with cluster.client() as client:
        leader = await ready(client, 3)
        ids = [(await client.run_dag("w1", {"sleep": "0.02"})).id for _ in range(200)]
        await asyncio.sleep(1.0)
        killed_at = time.monotonic()
        cluster.kill(leader)
        new = await wait_until(
            lambda: _new_leader(client, leader), 20, "a new leader")
        assert new != leader
        elected_in = time.monotonic() - killed_at
        done = await wait_until(lambda: all_final(client, ids), 180, "all runs final")
        statuses = collections.Counter(i.status for i in done)
        assert statuses == {InstanceStatus.SUCCESS: 200}, statuses
        assert elected_in < 15
    _check_executions(cluster, ids, killed={leader})


async def _new_leader(client: object, old: str) -> str | None:
    now = await leader_of(client)  # type: ignore[arg-type]
    return now if now and now != old else None


async def test_kill_worker_moves_its_instances(cluster: Cluster) -> None:
    async with cluster.client() as client:
        leader = await ready(client, 3)
        victim = next(w for w in ("w1", "w2", "w3") if w != leader)
        ids = [(await client.run_dag("w1", {"sleep": "0.3"})).id for _ in range(30)]

        async def victim_has_work() -> bool:
            # an attempt recorded as running there: the move must show it interrupted
            for i in await client.list_instances(limit=1000):
                if i.worker == victim and i.status == InstanceStatus.RUNNING:
                    full = await client.get_instance(i.id)
                    if any(t.status == TaskStatus.RUNNING for t in full.tasks):
                        return True
            return False

        await wait_until(victim_has_work, 30, "the victim running something", step=0.05)
        cluster.kill(victim)
        killed_at = utcnow()
        done = await wait_until(lambda: all_final(client, ids), 120, "all runs final")
        assert all(i.status == InstanceStatus.SUCCESS for i in done)
        # what the victim had not finished when it was killed ended elsewhere
        left = [i.id for i in done if i.worker == victim
                and (i.ended_at is None or i.ended_at > killed_at)]
        assert not left, left
        moved = [await client.get_instance(i.id) for i in done]
        interrupted = [t for i in moved for t in i.tasks
                       if any("interrupted" in (a.reason or "") for a in t.attempt_history)]
        assert interrupted, "no attempt of the killed worker was seen interrupted"
    _check_executions(cluster, ids, killed={victim})


async def test_paused_leader_steps_down_and_is_fenced(cluster: Cluster) -> None:
    async with cluster.client() as client:
        leader = await ready(client, 3)
        first = await client.store.get_lease("leader")  # type: ignore[attr-defined]
        ids = [(await client.run_dag("w1", {"sleep": "0.4"})).id for _ in range(30)]

        async def leader_busy() -> bool:
            return any(i.worker == leader and i.status == InstanceStatus.RUNNING
                       for i in await client.list_instances(limit=1000))

        await wait_until(leader_busy, 30, "the leader running something", step=0.05)
        cluster.signal(leader, signal.SIGSTOP)
        new = await wait_until(lambda: _new_leader(client, leader), 30, "a new leader")
        second = await client.store.get_lease("leader")  # type: ignore[attr-defined]
        assert second.token > first.token
        await asyncio.sleep(cluster.unhealthy_secs)  # its instances move meanwhile
        cluster.signal(leader, signal.SIGCONT)
        await wait_until(lambda: _said(cluster, leader, "stepped down"), 20,
                         "the old leader stepping down")
        assert await leader_of(client) == new  # exactly one leader, still the new one
        done = await wait_until(lambda: all_final(client, ids), 120, "all runs final")
        assert all(i.status == InstanceStatus.SUCCESS for i in done)
        # the paused node's late writes for instances that moved were refused
        await wait_until(lambda: _said(cluster, leader, "moved to another worker",
                                       "writes refused"), 20,
                         "the paused node dropping what moved")
        third = await client.store.get_lease("leader")  # type: ignore[attr-defined]
        assert third.token >= second.token
    _check_executions(cluster, ids, killed={leader})


async def _said(cluster: Cluster, node: str, *texts: str) -> bool:
    log = cluster.log_text(node)
    return any(t in log for t in texts)
