"""Across processes: the mutex excludes and expires with its TTL; one node id, one live node;
an instance no worker can take waits with a reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow import InstanceStatus

from .harness import Cluster, leader_of, wait_until

pytestmark = pytest.mark.cluster

HOLDER = textwrap.dedent("""
    import asyncio, os, sys, time
    from tideflow.store.sql.store import SqlStore
    from tideflow.cluster.mutex import Mutex

    async def main():
        url, log, rounds, ttl = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        store = SqlStore(url)
        await store.open()
        for _ in range(rounds):
            m = Mutex(store, "shared", ttl_secs=abs(ttl))
            await m.acquire(timeout=60, poll_secs=0.02)
            with open(log, "a") as f:
                f.write(f"start {os.getpid()}\\n")
            await asyncio.sleep(0.05)
            with open(log, "a") as f:
                f.write(f"end {os.getpid()}\\n")
            if ttl < 0:
                print("held", flush=True)
                await asyncio.sleep(3600)  # keep it until killed
            await m.release()
        await store.close()

    asyncio.run(main())
""")


def _holder(tmp: Path, url: str, log: Path, rounds: int, ttl: float) -> subprocess.Popen[str]:
    script = tmp / "holder.py"
    script.write_text(HOLDER)
    return subprocess.Popen([sys.executable, str(script), url, str(log), str(rounds), str(ttl)],
                            stdout=subprocess.PIPE, text=True)


def test_mutex_excludes_across_processes_and_expires(server_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    procs = [_holder(tmp_path, server_url, log, 8, 10.0) for _ in range(3)]
    for p in procs:
        assert p.wait(120) == 0
    lines = log.read_text().split()
    events = list(zip(lines[::2], lines[1::2], strict=True))
    assert len(events) == 48
    for (kind_a, pid_a), (kind_b, pid_b) in zip(events[::2], events[1::2], strict=True):
        assert (kind_a, kind_b) == ("start", "end") and pid_a == pid_b, "critical sections overlap"

    # a holder killed while holding: the next one gets the lock once the TTL runs out
    log.unlink()
    holder = _holder(tmp_path, server_url, log, 1, -1.0)  # holds (TTL 1 s) until killed
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    after = _holder(tmp_path, server_url, log, 1, 5.0)
    assert after.wait(60) == 0
    assert time.monotonic() - started < 30


@pytest.fixture
def cluster(server_url: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(server_url, tmp_path)
    yield c
    c.stop_all()


async def test_second_live_node_with_the_same_id_is_refused(cluster: Cluster) -> None:
    first = cluster.start("same")
    async with cluster.client() as client:
        await wait_until(lambda: leader_of(client), 30, "a leader")
        twin = subprocess.run(
            [sys.executable, "-m", "tideflow.cli.main", "server", "--db", cluster.db_url,
             "--node-id", "same", "--unhealthy-secs", "3", "--heartbeat-secs", "0.6"],
            capture_output=True, text=True, timeout=60)
        assert twin.returncode != 0
        assert "another live node already uses the id 'same'" in twin.stderr
        assert first.poll() is None


async def test_no_matching_worker_waits_with_a_reason(cluster: Cluster) -> None:
    cluster.start("w1")
    async with cluster.client() as client:
        await wait_until(lambda: leader_of(client), 30, "a leader")

        async def dag() -> bool:
            try:
                await client.get_dag("w1")
                return True
            except Exception:
                return False

        await wait_until(dag, 30, "the DAG registered")
        inst = await client.run_dag("w1", selector={"zone": "mars"})

        async def reason() -> str | None:
            got = await client.get_instance(inst.id)
            return got.reason if got.status == InstanceStatus.INIT and got.reason else None

        why = await wait_until(reason, 30, "a waiting reason")
        assert "selector" in why and "zone=mars" in why


def test_a_node_waits_for_its_database_instead_of_exiting(tmp_path: Path) -> None:
    """A database that cannot be reached yet (restarting, or started after the node) is
    waited for; SIGTERM still stops the node cleanly."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "node.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tideflow.cli.main", "server", "--node-id", "patient",
             "--db", f"postgresql://postgres@127.0.0.1:{port}/nothing"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "cannot open the database yet" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "no retry logged"
            time.sleep(0.2)
        time.sleep(1.5)
        assert proc.poll() is None, log.read_text(errors="replace")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
