"""Every metric docs/http-api.md lists moves, whichever way tideflow runs: an app from
``create_app`` over an engine of the caller's own, ``tideflow server`` alone, and two
``tideflow server`` workers of one cluster; and ``--metrics-names fastflow|both`` shows
Fastflow's series with their types and ``worker_key`` label."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tideflow import ActionRegistry, Engine, EngineSettings
from tideflow.api import create_app, serve

REPO = Path(__file__).resolve().parents[2]
DOCUMENTED = re.findall(r"^\| `(tideflow_[a-z_]+)` \|",
                        (REPO / "docs" / "http-api.md").read_text(), re.M)
#: a state, not an event: present is all it can do on a node that just heartbeated
PRESENT_ONLY = {"tideflow_node_heartbeat_age_seconds"}
FASTFLOW = {
    "fastflow_executor_task_running": "gauge",
    "fastflow_executor_task_completed": "counter",
    "fastflow_executor_task_failed": "counter",
    "fastflow_executor_task_success": "counter",
    "fastflow_executor_dag_ins_failed": "gauge",
    "fastflow_parser_parse_scheduled_dag_instance_elapsed_ms": "gauge",
    "fastflow_parser_parse_scheduled_dag_instance_failed": "counter",
    "fastflow_dispatcher_elapsed_ms": "gauge",
    "fastflow_dispatcher_failed": "counter",
}


def _dag(dag_id: str, *, shell: bool) -> dict[str, Any]:
    """A task that succeeds, one that runs a while, one that fails, and a sync function that
    overruns its timeout (its thread is abandoned)."""
    if shell:
        # the built-in python action's sync call runs in the engine's counted pool too
        nap = {"actionName": "python",
               "params": {"func": "subprocess:run", "kwargs": {"args": ["sleep", "3"]}}}
        slow = {"actionName": "shell", "params": {"cmd": ["sleep", "2"]}}
        fail = {"actionName": "shell", "params": {"cmd": ["false"]}}
        ok = {"actionName": "shell", "params": {"cmd": ["true"]}}
    else:
        nap, slow = {"actionName": "nap"}, {"actionName": "slow"}
        fail, ok = {"actionName": "fail"}, {"actionName": "ok"}
    return {"id": dag_id, "tasks": [
        {"id": "ok", **ok},
        {"id": "slow", **slow, "dependOn": ["ok"]},
        {"id": "fail", **fail, "dependOn": ["ok"]},
        {"id": "nap", **nap, "dependOn": ["ok"], "timeoutSecs": 1},
    ]}


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _moved(scrapes: list[str]) -> set[str]:
    """The documented metrics that moved in any of these scrapes."""
    moved: set[str] = set()
    for text in scrapes:
        for family in text_string_to_metric_families(text):
            name = family.name if family.type != "counter" else family.name + "_total"
            for s in family.samples:
                counts = s.name.endswith("_count") or family.type != "histogram"
                if counts and (s.value > 0 or name in PRESENT_ONLY):
                    moved.add(name)
    return moved


def _check_every_documented_moved(scrapes: list[str]) -> None:
    assert len(DOCUMENTED) >= 14, DOCUMENTED
    missing = set(DOCUMENTED) - _moved(scrapes)
    assert not missing, f"documented metrics that never moved: {sorted(missing)}"


def _scrape_while_running(get: Any, run: Any) -> list[str]:
    """Start the runs, scrape while the slow task runs, and once more when all ended."""
    scrapes = []
    run()
    deadline = time.monotonic() + 60
    while True:
        text = get("/metrics")
        scrapes.append(text)
        running = _families(text)["tideflow_running_tasks"].samples
        if any(s.value > 0 for s in running):
            break
        assert time.monotonic() < deadline, "no task was ever seen running"
        time.sleep(0.1)
    return scrapes


def test_an_app_over_the_callers_engine(tmp_path: Path) -> None:
    registry = ActionRegistry()
    registry.add_function("ok", lambda ctx, params: None)
    registry.add_function("slow", _slow)
    registry.add_function("fail", _fail)
    registry.add_function("nap", lambda ctx, params: time.sleep(3))

    async def go() -> list[str]:
        settings = EngineSettings(node_id="embedded-node")
        engine = Engine.from_url(f"sqlite:///{tmp_path / 'e.db'}", actions=registry,
                                 settings=settings)
        async with engine:
            app = create_app(engine)
            stop, port = asyncio.Event(), asyncio.get_running_loop().create_future()
            server = asyncio.create_task(serve(app, "127.0.0.1", 0, stop=stop,
                                               on_listening=lambda h, p: port.set_result(p)))
            base = f"http://127.0.0.1:{await port}"
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                assert (await http.post("/api/v1/dags", json=_dag("m", shell=False))
                        ).status_code == 201
                run = asyncio.create_task(http.post("/api/v1/dags/m/run", json={"wait": 30}))
                scrapes = []
                while not run.done():
                    scrapes.append((await http.get("/metrics")).text)
                    await asyncio.sleep(0.1)
                assert run.result().json()["status"] == "failed"
                scrapes.append((await http.get("/metrics")).text)
            stop.set()
            await server
        return scrapes

    _check_every_documented_moved(asyncio.run(go()))


async def _slow(ctx: Any, params: Any) -> None:
    await asyncio.sleep(2)


def _fail(ctx: Any, params: Any) -> None:
    raise RuntimeError("boom")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _servers(tmp_path: Path, node_ids: list[str], *extra: str, db: str | None = None
             ) -> Iterator[list[str]]:
    db = db or f"sqlite:///{tmp_path / 'c.db'}"
    procs, urls = [], []
    try:
        for node in node_ids:
            port = _free_port()
            log = open(tmp_path / f"{node}.log", "w")  # noqa: SIM115 - closed with the process
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "tideflow.cli.main", "server", "--db", db,
                 "--node-id", node, "--http", f"127.0.0.1:{port}", "--python-allow", "subprocess",
                 "--unhealthy-secs", "3", "--heartbeat-secs", "0.5", *extra],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT), log))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "a server did not start"
                time.sleep(0.2)
        yield urls
    finally:
        for proc, log in procs:
            proc.terminate()
            proc.wait(20)
            log.close()


@pytest.mark.cluster
def test_tideflow_server_alone_with_both_name_sets(tmp_path: Path) -> None:
    with _servers(tmp_path, ["solo"], "--metrics-names", "both") as (url,):
        def get(path: str) -> str:
            return httpx.get(url + path, timeout=30).text

        def run() -> None:
            assert httpx.post(url + "/api/v1/dags", json=_dag("m", shell=True),
                              timeout=30).status_code == 201
            inst = httpx.post(url + "/api/v1/dags/m/run", timeout=30,
                              json={"tags": {"business_type": "db", "business_id": "42"}})
            assert inst.status_code == 201

        scrapes = _scrape_while_running(get, run)
        inst_id = httpx.get(url + "/api/v1/dag-instances", timeout=30).json()["items"][0]["id"]
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/api/v1/dag-instances/{inst_id}", timeout=30
                        ).json()["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        final = get("/metrics")
        _check_every_documented_moved([*scrapes, final])

        fams = _families(final)
        for name, kind in FASTFLOW.items():
            assert fams[name].type == kind, name
            for s in fams[name].samples:
                assert s.labels["worker_key"] == "solo", (name, s.labels)
        value = {s.name: s.value for f in fams.values() for s in f.samples
                 if s.labels.get("worker_key") == "solo" and "dag_ins_id" not in s.labels}
        assert value["fastflow_executor_task_completed_total"] == 4
        assert value["fastflow_executor_task_failed_total"] == 2  # false, and the timeout
        assert value["fastflow_executor_task_success_total"] == 2
        assert value["fastflow_executor_task_running"] == 0
        assert value["fastflow_parser_parse_scheduled_dag_instance_elapsed_ms"] > 0
        failed = [s for s in fams["fastflow_executor_dag_ins_failed"].samples]
        failed += [s for t in scrapes for s in
                   _families(t)["fastflow_executor_dag_ins_failed"].samples]
        assert {(s.labels["dag_ins_id"], s.labels["business_type"], s.labels["business_id"])
                for s in failed} == {(inst_id, "db", "42")}
        # shown once, then forgotten, as Fastflow does
        assert not _families(get("/metrics"))["fastflow_executor_dag_ins_failed"].samples


@pytest.mark.cluster
def test_two_workers_of_a_cluster(tmp_path: Path, db_url: str) -> None:
    with _servers(tmp_path, ["w1", "w2"], "--metrics-names", "fastflow", db=db_url) as urls:
        assert httpx.post(urls[0] + "/api/v1/dags", json=_dag("m", shell=True),
                          timeout=30).status_code == 201
        ids = [httpx.post(urls[0] + "/api/v1/dags/m/run", json={}, timeout=30).json()["id"]
               for _ in range(4)]
        deadline = time.monotonic() + 90
        while True:
            found = [httpx.get(f"{urls[0]}/api/v1/dag-instances/{i}", timeout=30).json()
                     for i in ids]
            if all(f["status"] == "failed" for f in found):
                break
            assert time.monotonic() < deadline, [f["status"] for f in found]
            time.sleep(0.3)
        by_worker = {w: sum(1 for f in found if f["worker"] == w) for w in ("w1", "w2")}
        for url, node in zip(urls, ("w1", "w2"), strict=True):
            fams = _families(httpx.get(url + "/metrics", timeout=30).text)
            assert not any(n.startswith("tideflow_") for n in fams), node  # fastflow only
            value = {s.name: s.value for f in fams.values() for s in f.samples
                     if "dag_ins_id" not in s.labels}
            assert value["fastflow_executor_task_completed_total"] == 4 * by_worker[node]
            if by_worker[node]:
                # the worker that parsed what the leader gave it says so
                assert value["fastflow_parser_parse_scheduled_dag_instance_elapsed_ms"] > 0
