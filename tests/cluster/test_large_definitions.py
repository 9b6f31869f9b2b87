"""A huge definition POSTed to a real node never stalls it: /healthz keeps answering and the
node keeps its lease while the definition is read; one past the budget is refused clearly."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from .harness import Cluster, leader_of, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


def _definition(tasks: int) -> str:
    lines = ["id: huge", "tasks:"]
    for i in range(tasks):
        dep = f", dependOn: [t{i - 1}]" if i else ""
        lines.append(f"  - {{id: t{i}, actionName: shell, params: {{cmd: [echo, '{i}']}}{dep}}}")
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_huge_definition_does_not_stall_the_node(postgres_url: str, tmp_path: Path) -> None:
    port = _free_port()
    cluster = Cluster(postgres_url, tmp_path)
    base = f"http://127.0.0.1:{port}"
    yaml_type = {"content-type": "application/yaml"}
    try:
        cluster.start("big", "worker", "--http", f"127.0.0.1:{port}")
        async with cluster.client() as client:
            assert await wait_until(lambda: leader_of(client), 60, "a leader") == "big"
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                await wait_until(lambda: _answers(http), 30, "the API")

            results: dict[str, httpx.Response] = {}

            def post(name: str, body: str) -> None:
                with httpx.Client(base_url=base, timeout=300) as c:
                    results[name] = c.post("/api/v1/dags", content=body, headers=yaml_type)

            bodies = {
                "accepted": _definition(20_000),    # within the limits: seconds of reading
                "too-many": _definition(100_000),   # over the task limit (5.7 MB)
            }
            for name, body in bodies.items():
                worker = threading.Thread(target=post, args=(name, body))
                worker.start()
                worst = 0.0
                probes = 0
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    while worker.is_alive():
                        started = time.monotonic()
                        r = await http.get("/healthz")
                        worst = max(worst, time.monotonic() - started)
                        probes += 1
                        assert r.status_code == 200
                        await asyncio.sleep(0.05)
                worker.join()
                # the loop answered all along; the reading thread shares the interpreter lock
                # with it, so on a busy machine a probe may wait, but never for the whole read
                assert probes >= 5, name
                assert worst < 1.0, f"{name}: /healthz took {worst:.2f} s"
                # and the node kept its lease throughout
                assert await leader_of(client) == "big"
                nodes = {n.node_id: n for n in await client.list_nodes()}
                assert nodes["big"].alive
            # one term of leadership, never stepped down
            log = cluster.log_text("big")
            assert log.count("leadership: big is the leader") == 1, log
            assert "stepped down" not in log

        accepted = results["accepted"]
        assert accepted.status_code == 201, accepted.text[:300]
        assert accepted.json()["version"] == 1
        refused = results["too-many"]
        assert refused.status_code == 422
        message = str(refused.json()["message"])
        assert "100,000 tasks, more than the limit of 20,000" in message
        # past the size budget: refused before it is read
        with httpx.Client(base_url=base, timeout=60) as c:
            over = c.post("/api/v1/dags", content="#" * (11 * 1024 * 1024), headers=yaml_type)
        assert over.status_code == 413 and "limit" in over.json()["message"]
    finally:
        cluster.stop_all()


async def _answers(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False
