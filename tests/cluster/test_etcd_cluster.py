"""Real `tideflow server` processes with ``--keeper etcd://...``, on PostgreSQL and on
MariaDB: a killed leader is replaced and the new one dispatches; a paused leader is deposed
and its writes are refused by the store; an etcd restart leaves the nodes executing, no
leader acting while etcd is away, and a leader back once it returns."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tideflow import Engine, InstanceStatus, StoreError
from tideflow.cluster.scheduling import LeaderFence

from .backends import BACKENDS, backend_url
from .harness import Cluster, all_final, leader_of, ready, wait_until

pytestmark = pytest.mark.cluster

#: the leader's lease on etcd (whole seconds): short, with room for a late beat
LEASE = "2"


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest) -> str:
    return backend_url(request)


@pytest.fixture
def cluster(db: str, etcd_url: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(db, tmp_path, keeper=etcd_url)
    for name in ("w1", "w2", "w3"):
        c.start(name, "worker", "--lease-secs", LEASE)
    yield c
    c.stop_all()


def _check_executions(c: Cluster, ids: list[str], lost: set[str]) -> None:
    """Every task ran; a task ran again only where a node was killed or paused past its
    lease."""
    runs = collections.Counter((iid, tid) for _, iid, tid, _ in c.executions() if iid in ids)
    assert len(runs) == len(ids) * 10, "a task never ran"
    nodes: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for node, iid, tid, _ in c.executions():
        nodes[(iid, tid)].add(node)
    for key, count in runs.items():
        if count > 1:
            assert nodes[key] & lost, f"{key} ran {count} times with no node lost"


async def _new_leader(client: Engine, *old: str) -> str | None:
    now = await leader_of(client)
    return now if now and now not in old else None


async def _sql_lease(client: Engine) -> tuple[str, int]:
    """The leader's holder and token as the SQL store records them: what fenced writes
    compare against."""
    row = await client.store.get_lease("leader")  # type: ignore[attr-defined]
    assert row is not None and row.holder is not None
    return row.holder, int(row.token)


async def test_killed_leader_is_replaced_and_a_paused_one_is_fenced(cluster: Cluster) -> None:
    async with cluster.client() as client:
        first = await ready(client, 3)
        first_holder, first_token = await _sql_lease(client)
        assert first_holder.startswith(f"{first}/")
        # the CLI, straight to the database, lists the nodes from etcd with TIDEFLOW_KEEPER
        listed = await _cli_nodes(cluster)
        assert {"w1", "w2", "w3"} <= {n["nodeId"] for n in listed if n["alive"]}
        assert [n["nodeId"] for n in listed if n["isLeader"]] == [first]
        ids = [(await client.run_dag("w1", {"sleep": "0.05"})).id for _ in range(40)]
        await asyncio.sleep(0.5)
        killed = time.monotonic()
        cluster.kill(first)
        probe = await client.run_dag("w1")

        async def dispatched() -> bool:
            return (await client.get_instance(probe.id)).worker is not None

        await wait_until(dispatched, 20, "the new leader dispatching", step=0.05)
        failover = time.monotonic() - killed
        second = await wait_until(lambda: _new_leader(client, first), 20, "a new leader")
        second_holder, second_token = await _sql_lease(client)  # it has dispatched
        assert second_holder.startswith(f"{second}/") and second_token > first_token
        assert failover < 8, f"failover took {failover:.1f}s"

        # the new leader freezes past its lease: a third takes over with a larger token
        cluster.signal(second, signal.SIGSTOP)
        third = await wait_until(lambda: _new_leader(client, first, second), 30,
                                 "a leader after the pause")

        async def third_recorded() -> tuple[str, int] | None:
            # etcd names the new leader a moment before the store has its token
            holder, token = await _sql_lease(client)
            return (holder, token) if holder.startswith(f"{third}/") else None

        third_holder, third_token = await wait_until(third_recorded, 20,
                                                     "the new leader's token in the store")
        assert third_token > second_token
        ids += [(await client.run_dag("w1", {"sleep": "0.05"})).id for _ in range(10)]
        # what the frozen leader would write under its old token is refused by the store
        waiting = await client.run_dag("w1", selector={"zone": "nowhere"})
        refused = await client.store.assign(  # type: ignore[attr-defined]
            [(waiting.id, third)], LeaderFence(second_holder, second_token))
        assert refused == []
        assert not await client.store.fence_leader(  # type: ignore[attr-defined]
            LeaderFence(second_holder, second_token), 2)
        cluster.signal(second, signal.SIGCONT)
        await wait_until(lambda: _said(cluster, second, "stepped down"), 20,
                         "the old leader stepping down")
        assert await leader_of(client) == third
        assert (await client.get_instance(waiting.id)).worker is None
        done = await wait_until(lambda: all_final(client, ids), 120, "all runs final")
        assert all(i.status == InstanceStatus.SUCCESS for i in done)
        assert (await _sql_lease(client))[1] >= third_token
    _check_executions(cluster, ids, lost={first, second})


@pytest.fixture(params=[
    pytest.param("postgresql", marks=pytest.mark.postgres),
    # the same on MariaDB, where the Keeper plays no different part: on its own command
    pytest.param("mysql", marks=[pytest.mark.mysql, pytest.mark.long]),
])
def restart_db(request: pytest.FixtureRequest) -> str:
    return backend_url(request)


async def test_etcd_restart_leaves_nodes_executing(restart_db: str, tmp_path: Path) -> None:
    from dbservers import PrivateEtcd

    db = restart_db

    missing = PrivateEtcd.missing_binaries()
    if missing:
        pytest.skip(missing)
    with PrivateEtcd(tmp_path / "etcd") as etcd:
        c = Cluster(db, tmp_path, keeper=etcd.url)
        try:
            for name in ("w1", "w2"):
                c.start(name, "worker", "--lease-secs", LEASE)
            async with c.client() as client:
                await ready(client, 2)
                ids = [(await client.run_dag("w1", {"sleep": "2"})).id for _ in range(6)]

                async def all_running() -> bool:
                    got = [await client.get_instance(i) for i in ids]
                    return all(i.status == InstanceStatus.RUNNING for i in got)

                await wait_until(all_running, 30, "the runs running", step=0.05)
                etcd.kill()  # etcd crashes; it restarts below on the same data
                # what the nodes own goes on to its end without etcd ...
                done = await wait_until(lambda: all_final(client, ids), 30,
                                        "the runs ending while etcd is away")
                assert all(i.status == InstanceStatus.SUCCESS for i in done)
                # ... and once the last leader's lease has surely run out, no leader acts
                await asyncio.sleep(float(LEASE) + 0.5)
                late = await client.run_dag("w1")
                await asyncio.sleep(2.0)
                assert (await client.get_instance(late.id)).worker is None
                etcd.start()
                await wait_until(lambda: _leader_once_reached(client), 20,
                                 "a leader after the restart")
                ids.append(late.id)
                done = await wait_until(lambda: all_final(client, ids), 30, "all runs final")
                assert all(i.status == InstanceStatus.SUCCESS for i in done)
                # no node was declared dead: nothing ran twice, nothing moved
                assert not any(_said_sync(c, n, "instance(s) of dead workers")
                               for n in ("w1", "w2"))
            _check_executions(c, ids, lost=set())
        finally:
            c.stop_all()


async def _cli_nodes(cluster: Cluster) -> list[dict[str, Any]]:
    env = {**os.environ, "TIDEFLOW_KEEPER": cluster.keeper or ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tideflow.cli.main", "node", "list", "--db", cluster.db_url,
        "--json", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


async def _leader_once_reached(client: Engine) -> str | None:
    """The leader; None while this client's connection to etcd is not back yet (it tries
    again within half a second)."""
    try:
        return await leader_of(client)
    except StoreError:
        return None


def _said_sync(cluster: Cluster, node: str, text: str) -> bool:
    return text in cluster.log_text(node)


async def _said(cluster: Cluster, node: str, *texts: str) -> bool:
    log = cluster.log_text(node)
    return any(t in log for t in texts)
