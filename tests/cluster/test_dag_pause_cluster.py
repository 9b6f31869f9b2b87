"""A DAG's schedule paused and resumed with the real CLI while real server processes run it:
the leader's cron trigger stops firing it, and on resume fires from the next tick without
firing the ticks missed meanwhile (even with ``catchup: all``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tideflow import Engine

from .backends import BACKENDS, backend_url
from .harness import REPO, Cluster, ready

pytestmark = pytest.mark.cluster


@pytest.fixture(params=BACKENDS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(backend_url(request), tmp_path, unhealthy_secs=2.0)
    for name in ("w1", "w2"):
        c.start(name)
    yield c
    c.stop_all()


def _cli(cluster: Cluster, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "tideflow.cli.main", *args, "--db",
                           cluster.db_url], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


async def _ticks(client: Engine) -> list[datetime]:
    found = await client.list_instances(dag_id="every-second", limit=1000)
    return sorted(i.cron_tick for i in found if i.cron_tick is not None)


async def test_paused_schedule_stops_and_resumes_without_catch_up(cluster: Cluster) -> None:
    async with cluster.client() as client:
        await ready(client, 2)
        await client.register_dag({
            "id": "every-second", "cron": "* * * * * *", "catchup": "all", "maxCatchup": 100,
            "tasks": [{"id": "a", "actionName": "noop"}]})
        await asyncio.sleep(3)
        assert "paused" in _cli(cluster, "dag", "pause", "every-second")
        await asyncio.sleep(1.5)  # a tick fired just as it was paused has landed
        before = await _ticks(client)
        assert len(before) >= 2
        await asyncio.sleep(3)
        assert await _ticks(client) == before, "the leader fired a paused schedule"

        resumed_at = datetime.now(UTC)
        assert "running" in _cli(cluster, "dag", "resume", "every-second")
        await asyncio.sleep(3.5)
        after = [t for t in await _ticks(client) if t not in before]
        assert len(after) >= 2, "the resumed schedule did not fire"
        assert min(after) > resumed_at.replace(microsecond=0), "missed ticks were fired"
        assert len(set(after)) == len(after)
        _cli(cluster, "dag", "pause", "every-second")  # quiet for the teardown
