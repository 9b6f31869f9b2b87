"""Command-line clients next to live workers (as inside a worker's pod, where POD_NAME is the
worker's id): they never take a worker's identity and leave no node rows behind."""

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
from .harness import HERE, REPO, Cluster, ready, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture(params=BACKENDS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    url = backend_url(request)
    c = Cluster(url, tmp_path, unhealthy_secs=2.0)
    c.start("tideflow-worker-0")
    yield c
    c.stop_all()


def _in_the_pod(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """A client started as `kubectl exec tideflow-worker-0 -- tideflow ...` would be."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEFLOW_")}
    env.update(POD_NAME="tideflow-worker-0", TIDEFLOW_DB=c.db_url,
               PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.run([sys.executable, "-m", "tideflow.cli.main", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)


async def test_client_verbs_in_a_workers_pod(cluster: Cluster) -> None:
    async with cluster.client() as client:
        await ready(client, 1)
        listed = await asyncio.to_thread(_in_the_pod, cluster, "node", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        nodes = json.loads(listed.stdout)["items"]
        worker = [n for n in nodes if n["nodeId"] == "tideflow-worker-0"]
        assert len(worker) == 1 and worker[0]["alive"], nodes
        ran = await asyncio.to_thread(_in_the_pod, cluster, "dag", "run", "w1", "--wait", "30",
                                      "--json")
        assert ran.returncode == 0, ran.stderr
        inst = json.loads(ran.stdout)
        assert inst["status"] == InstanceStatus.SUCCESS
        assert inst["worker"] == "tideflow-worker-0"
        # a run driven here, as `tideflow run` does, is recorded under its own id
        dag = cluster.tmp / "solo.yaml"
        dag.write_text("id: solo\ntasks:\n  - {id: a, actionName: noop}\n")
        here = await asyncio.to_thread(_in_the_pod, cluster, "run", str(dag), "--actions",
                                      "cluster_actions", "--json")
        assert here.returncode == 0, here.stderr
        assert json.loads(here.stdout)["worker"] != "tideflow-worker-0"
        # the clients left, and the worker was never disturbed
        rows = [n.node_id for n in await client.list_nodes()]
        assert rows.count("tideflow-worker-0") == 1
        assert not [r for r in rows if r.startswith("cli-")], rows
    assert "another live node" not in cluster.log_text("tideflow-worker-0")


async def test_a_killed_watcher_is_forgotten(cluster: Cluster) -> None:
    cluster.start("api", role="watcher")
    async with cluster.client() as client:
        await ready(client, 1)
        await wait_until(lambda: client.store.get_node("api"), 30, "the watcher registered")
        cluster.kill("api")

        async def forgotten() -> bool:
            return await client.store.get_node("api") is None

        await wait_until(forgotten, 30, "the killed watcher's row removed")
        assert await client.store.get_node("tideflow-worker-0") is not None
