"""Trigger rules, compensation and approval decisions on a cluster of real `tideflow server`
processes (MariaDB and PostgreSQL): a worker SIGKILLed in the middle of a compensation step."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow import InstanceStatus, TaskStatus

from .backends import BACKENDS, backend_url
from .harness import Cluster, ready, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture(params=BACKENDS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(backend_url(request), tmp_path)
    for name in ("w1", "w2"):
        c.start(name)
    yield c
    c.stop_all()


def _saga(hold: Path, fail: Path) -> dict[str, object]:
    return {"id": "saga-kill", "tasks": [
        {"id": "a", "actionName": "noop",
         "compensate": {"actionName": "hold_while", "params": {"path": str(hold)},
                        "timeoutSecs": 300}},
        {"id": "b", "actionName": "noop", "dependOn": ["a"],
         "compensate": {"actionName": "noop"}},
        {"id": "c", "actionName": "fail_while", "dependOn": ["b"],
         "params": {"path": str(fail)}},
        {"id": "notify", "actionName": "noop", "dependOn": ["c"], "runIf": "failed"},
        {"id": "cleanup", "actionName": "noop", "dependOn": ["notify"], "runIf": "always"},
    ]}


async def test_worker_killed_during_compensation(cluster: Cluster, tmp_path: Path) -> None:
    hold, fail = tmp_path / "hold", tmp_path / "fail"
    hold.touch()
    fail.touch()
    async with cluster.client() as client:
        await ready(client, 2, dag_id="w1")
        await client.register_dag(_saga(hold, fail))
        inst = await client.run_dag("saga-kill")

        # the main path fails, its handlers run, then the compensation: compensate:b, then
        # compensate:a, which holds
        def step_runs() -> list[tuple[str, str, str, int]]:
            return [e for e in cluster.executions()
                    if e[1] == inst.id and e[2] == "compensate:a"]

        async def holding() -> bool:
            return bool(step_runs())

        await wait_until(holding, 60, "compensate:a to start")
        victim = step_runs()[0][0]
        mid = await client.get_instance(inst.id)
        assert mid.status == InstanceStatus.RUNNING and mid.compensation == "running"
        cluster.kill(victim)
        hold.unlink()  # the step may finish now, on the node that inherits the instance

        async def final() -> bool:
            return (await client.get_instance(inst.id)).status.is_final

        await wait_until(final, 120, "the instance to end after the failover")
        done = await client.get_instance(inst.id)
        assert done.status == InstanceStatus.FAILED, done.reason
        assert done.compensation == "done"
        by = {t.task_id: t for t in done.tasks}
        assert by["notify"].status == TaskStatus.SUCCESS
        assert by["cleanup"].status == TaskStatus.SUCCESS
        assert by["compensate:a"].status == TaskStatus.SUCCESS
        assert by["compensate:b"].status == TaskStatus.SUCCESS
    runs = collections.Counter((e[2], e[3]) for e in cluster.executions() if e[1] == inst.id)
    # each step ran once per attempt: the killed attempt, then one more elsewhere
    assert runs[("compensate:b", 1)] == 1
    assert runs[("compensate:a", 1)] == 1 and runs[("compensate:a", 2)] == 1
    assert not any(k[0] == "compensate:a" and k[1] > 2 for k in runs)
    assert {e[0] for e in cluster.executions()
            if e[1] == inst.id and e[2] == "compensate:a" and e[3] == 2} != {victim}
