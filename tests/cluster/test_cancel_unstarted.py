"""A run nobody has started — waiting for a worker whose labels match its selector, or held
by maxActiveRuns — is canceled at once by the CLI or the Python API, in real ``tideflow
server`` clusters: no task of it ever starts when a matching worker appears or the limit
frees."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow import Engine, InstanceStatus, TaskStatus

from .harness import REPO, Cluster, ready, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture(params=[pytest.param("sqlite"),
                        pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    url = request.getfixturevalue({"sqlite": "sqlite_url", "postgresql": "postgres_url",
                                   "mysql": "mysql_url"}[request.param])
    c = Cluster(url, tmp_path)
    c.start("w1")
    yield c
    c.stop_all()


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tideflow.cli.main", *args,
                           "--db", cluster.db_url, "--json"],
                          cwd=REPO, env={**os.environ}, capture_output=True, text=True,
                          timeout=60)


def _ran(cluster: Cluster, iid: str) -> list[tuple[str, str, str, int]]:
    return [e for e in cluster.executions() if e[1] == iid]


async def test_cancel_of_a_run_waiting_for_a_matching_worker(cluster: Cluster) -> None:
    async with cluster.client() as client:
        await ready(client, 1)
        inst = await client.run_dag("w1", selector={"gpu": "yes"})

        async def waiting() -> bool:
            now = await client.get_instance(inst.id)
            return now.status == InstanceStatus.INIT and "selector" in (now.reason or "")

        await wait_until(waiting, 30, "the run waiting for a gpu worker")
        refused = _cli(cluster, "ins", "pause", inst.id)
        assert refused.returncode == 4, refused.stderr
        assert "it is init" in refused.stderr
        done = _cli(cluster, "ins", "cancel", inst.id, "--wait", "5")
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert shown["status"] == "canceled"
        assert {t["status"] for t in shown["tasks"]} == {"canceled"}

        # the matching worker appears: nothing of the canceled run starts
        cluster.start("gpu", "worker", "--labels", "gpu=yes")
        await ready(client, 2)
        probe = await client.run_dag("w1", selector={"gpu": "yes"})
        await wait_until(lambda: _final(client, probe.id), 30, "a run on the gpu worker")
        after = await client.get_instance(inst.id)
        assert after.status == InstanceStatus.CANCELED and after.worker is None
        assert all(t.attempts == 0 for t in after.tasks)
        assert _ran(cluster, inst.id) == []
        assert {e[0] for e in _ran(cluster, probe.id)} == {"gpu"}


async def test_cancel_of_a_run_held_by_max_active_runs(cluster: Cluster) -> None:
    async with cluster.client() as client:
        await ready(client, 1)
        await client.register_dag({
            "id": "lim", "maxActiveRuns": 1,
            "tasks": [{"id": "gate", "actionName": "approval"},
                      {"id": "work", "actionName": "noop", "dependOn": ["gate"]}],
        })
        first = await client.run_dag("lim")
        await wait_until(lambda: _status(client, first.id, InstanceStatus.BLOCKED), 30,
                         "the first run blocked")
        held = await client.run_dag("lim")

        async def waiting() -> bool:
            now = await client.get_instance(held.id)
            return "maxActiveRuns" in (now.reason or "")

        await wait_until(waiting, 30, "the second run held back")
        done = await client.cancel(held.id, wait=5)
        assert done.status == InstanceStatus.CANCELED
        assert [t.status for t in done.tasks] == [TaskStatus.CANCELED] * 2
        # the limit frees: the canceled run still never starts
        await client.continue_(first.id)
        await wait_until(lambda: _final(client, first.id), 30, "the first run's end")
        await asyncio.sleep(1.0)
        assert (await client.get_instance(held.id)).status == InstanceStatus.CANCELED
        assert _ran(cluster, held.id) == []
        assert [e[2] for e in _ran(cluster, first.id)] == ["work"]


async def _status(client: Engine, iid: str, status: InstanceStatus) -> bool:
    return (await client.get_instance(iid)).status == status


async def _final(client: Engine, iid: str) -> bool:
    return (await client.get_instance(iid)).status.is_final
