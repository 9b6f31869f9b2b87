"""Commands given on one node (a watcher) are carried out by the worker that owns the
instance — or by the worker that inherits it when the owner died."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow import Engine, InstanceStatus, TaskStatus

from .backends import BACKENDS, backend_url
from .harness import Cluster, ready, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture(params=BACKENDS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    url = backend_url(request)
    c = Cluster(url, tmp_path)
    for name in ("w1", "w2"):
        c.start(name)
    yield c
    c.stop_all()


async def _status(client: Engine, iid: str, status: InstanceStatus) -> bool:
    return (await client.get_instance(iid)).status == status


async def _ready(client: Engine) -> None:
    await ready(client, 2, "steer")


async def test_continue_cancel_pause_resume_retry_from_a_watcher(
    cluster: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "fail"
    marker.write_text("")
    async with cluster.client() as client:
        await _ready(client)
        inst = await client.run_dag("steer", {"path": str(marker)})
        await wait_until(lambda: _status(client, inst.id, InstanceStatus.BLOCKED), 30, "blocked")
        started = time.monotonic()
        await client.continue_(inst.id, wait=10)
        await wait_until(lambda: _status(client, inst.id, InstanceStatus.FAILED), 30, "failed")
        assert time.monotonic() - started < 10
        failed = await client.get_instance(inst.id)
        assert {t.task_id: t.status for t in failed.tasks}["check"] == TaskStatus.FAILED
        marker.unlink()
        await client.retry(inst.id)
        await wait_until(lambda: _status(client, inst.id, InstanceStatus.SUCCESS), 30, "success")

        # pause a running instance, resume it; cancel another
        slow = await client.run_dag("steer", {"sleep": "1.5"})
        await wait_until(lambda: _status(client, slow.id, InstanceStatus.BLOCKED), 30, "blocked")
        await client.continue_(slow.id)
        await wait_until(lambda: _status(client, slow.id, InstanceStatus.RUNNING), 30, "running")
        await client.pause(slow.id)
        await wait_until(lambda: _status(client, slow.id, InstanceStatus.PAUSED), 30, "paused")
        await client.resume(slow.id)
        await wait_until(lambda: _status(client, slow.id, InstanceStatus.SUCCESS), 30, "success")

        doomed = await client.run_dag("steer")
        await wait_until(lambda: _status(client, doomed.id, InstanceStatus.BLOCKED), 30,
                         "blocked")
        await client.cancel(doomed.id)
        await wait_until(lambda: _status(client, doomed.id, InstanceStatus.CANCELED), 30,
                         "canceled")


async def test_command_for_a_dead_workers_instance(cluster: Cluster) -> None:
    async with cluster.client() as client:
        await _ready(client)
        inst = await client.run_dag("steer")
        await wait_until(lambda: _status(client, inst.id, InstanceStatus.BLOCKED), 30, "blocked")
        owner = (await client.get_instance(inst.id)).worker
        assert owner in ("w1", "w2")
        cluster.kill(owner)
        await client.continue_(inst.id)  # queued for whoever owns it next
        await wait_until(lambda: _status(client, inst.id, InstanceStatus.SUCCESS), 60, "success")
        done = await client.get_instance(inst.id)
        assert done.worker != owner
