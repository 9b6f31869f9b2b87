"""Two service processes embedding `Engine` with the library's default cluster settings: the
leader is SIGKILLed, and the survivor takes over as fast as `tideflow server` with its
defaults does (both read one set of defaults)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow import Engine, EngineSettings, InstanceStatus
from tideflow.cluster.node import ClusterSettings

from .backends import BACKENDS, backend_url
from .harness import HERE, REPO, leader_of, stop_processes, wait_until

pytestmark = pytest.mark.cluster


class Embedded:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, node_id: str) -> None:
        env = {**os.environ,
               "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "TIDEFLOW_TEST_EXEC_LOG": str(self.tmp / "exec.log"),
               "TIDEFLOW_TEST_NODE": node_id}
        with open(self.tmp / f"{node_id}.log", "ab") as out:
            self.procs[node_id] = subprocess.Popen(
                [sys.executable, str(HERE / "embedded_node.py"), self.url, node_id],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop_all(self) -> None:
        stop_processes(self.procs.values())


@pytest.fixture(params=BACKENDS)
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Embedded]:
    url = backend_url(request)
    e = Embedded(url, tmp_path)
    for name in ("svc-a", "svc-b"):
        e.start(name)
    yield e
    e.stop_all()


async def test_an_embedded_leader_killed_is_replaced_within_its_lease(service: Embedded) -> None:
    settings = ClusterSettings()
    async with Engine.from_url(service.url, settings=EngineSettings(
            node_id=f"observer-{os.getpid()}", cluster=ClusterSettings(role="watcher"))) as obs:
        leader = await wait_until(lambda: leader_of(obs), 60, "a leader")

        async def both() -> bool:
            return sum(n.alive and n.role == "worker" for n in await obs.list_nodes()) == 2

        await wait_until(both, 60, "both services joined")
        await obs.register_dag({"id": "quick", "tasks": [{"id": "a", "actionName": "noop"}]})
        warm = await obs.run_dag("quick")
        assert (await obs.wait_for(warm.id, timeout=30, settled=False)).status == \
            InstanceStatus.SUCCESS
        leader = await wait_until(lambda: leader_of(obs), 30, "a leader")
        killed = time.monotonic()
        service.procs[leader].send_signal(signal.SIGKILL)
        service.procs[leader].wait(10)
        run = await obs.run_dag("quick")

        async def dispatched() -> bool:
            return (await obs.get_instance(run.id)).worker is not None

        await wait_until(dispatched, 60, "the run dispatched by a new leader", step=0.02)
        took = time.monotonic() - killed
        new = await leader_of(obs)
        assert new is not None and new != leader
        assert (await obs.wait_for(run.id, timeout=30, settled=False)).status == \
            InstanceStatus.SUCCESS
    # the lease, one heartbeat's lateness and the dispatch itself; a wide margin for a
    # loaded machine, far below the lease + unhealthy time the old defaults gave
    assert took < settings.lease_secs + 2 * settings.heartbeat_secs + 1.0, took
    print(f"embedded failover: {took:.2f}s")
    await asyncio.sleep(0)
