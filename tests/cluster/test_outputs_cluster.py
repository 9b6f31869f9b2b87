"""Task outputs and typed vars on a cluster of real `tideflow server` processes (MariaDB and
PostgreSQL): the worker running a child is SIGKILLed; the node that inherits the instance
runs the child again with its parent's output, which is not produced a second time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow import InstanceStatus, VarsError

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


def _dag(runs: Path, hold: Path, made: Path) -> dict[str, object]:
    return {"id": "outputs-kill",
            "vars": {"size": {"type": "integer", "required": True, "maximum": 50}},
            "tasks": [
                {"id": "make", "actionName": "shell", "params": {
                    "cmd": ["sh", "-c", f"echo made >> {made}; echo '{{\"id\": \"c-'$0'\"}}'",
                            "{{size}}"],
                    "outputJson": True}},
                {"id": "use", "actionName": "shell", "dependOn": ["make"], "params": {
                    "cmd": ["sh", "-c", f"echo $0 >> {runs}; while [ -f {hold} ]; do sleep 0.1;"
                            " done", "{{tasks.make.output.json.id}}"]}},
            ]}


async def test_outputs_survive_a_killed_worker(cluster: Cluster, tmp_path: Path) -> None:
    runs, hold, made = tmp_path / "runs", tmp_path / "hold", tmp_path / "made"
    hold.touch()
    async with cluster.client() as client:
        await ready(client, 2, dag_id="w1")
        await client.register_dag(_dag(runs, hold, made))
        with pytest.raises(VarsError, match="run var 'size' must be at most 50"):
            await client.run_dag("outputs-kill", {"size": 51})
        assert await client.list_instances(dag_id="outputs-kill") == []
        inst = await client.run_dag("outputs-kill", {"size": "4"})

        async def started() -> bool:
            return runs.exists() and bool(runs.read_text())

        await wait_until(started, 60, "the child to start")
        owner = (await client.get_instance(inst.id)).worker
        assert owner in ("w1", "w2")
        cluster.kill(owner)
        hold.unlink()

        async def final() -> bool:
            return (await client.get_instance(inst.id)).status.is_final

        await wait_until(final, 120, "the instance to end after the failover")
        done = await client.get_instance(inst.id)
    assert done.status == InstanceStatus.SUCCESS, done.reason
    assert done.worker != owner
    assert done.vars == {"size": 4}
    by = {t.task_id: t for t in done.tasks}
    assert by["make"].output == {"exitCode": 0, "json": {"id": "c-4"}}
    assert by["make"].attempts == 1 and made.read_text().split() == ["made"]
    assert by["use"].params["cmd"][-1] == "c-4"
    assert set(runs.read_text().split()) == {"c-4"}
    assert len(runs.read_text().split()) >= 2
