"""Real ``tideflow server`` processes on one database, for the cluster tests and the chaos
script."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tideflow import Engine, EngineSettings, InstanceRecord
from tideflow.cluster.node import ClusterSettings

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


class Cluster:
    def __init__(self, db_url: str, tmp: Path, *, unhealthy_secs: float = 3.0,
                 keeper: str | None = None) -> None:
        self.db_url = db_url
        #: the nodes' --keeper (etcd://...), None: the database
        self.keeper = keeper
        self.tmp = tmp
        self.exec_log = tmp / "exec.log"
        self.unhealthy_secs = unhealthy_secs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, node_id: str, role: str = "worker", *extra: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{node_id}.log"
        self.logs[node_id] = log
        env = {
            **os.environ,
            "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TIDEFLOW_TEST_EXEC_LOG": str(self.exec_log),
            "TIDEFLOW_TEST_NODE": node_id,
            # for actions that use the cluster's database themselves (the mutex workload)
            "TIDEFLOW_TEST_DB": self.db_url,
            "TIDEFLOW_TEST_KEEPER": self.keeper or "",
        }
        cmd = [sys.executable, "-m", "tideflow.cli.main", "server", "--role", role,
               "--db", self.db_url, "--node-id", node_id, "--dags", str(HERE / "dags"),
               "--actions", "cluster_actions",
               "--unhealthy-secs", str(self.unhealthy_secs),
               "--heartbeat-secs", str(self.unhealthy_secs / 5),
               *(["--keeper", self.keeper] if self.keeper else []), *extra]
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.procs[node_id] = proc
        return proc

    def signal(self, node_id: str, sig: int) -> None:
        self.procs[node_id].send_signal(sig)

    def kill(self, node_id: str) -> None:
        proc = self.procs[node_id]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def pause(self, node_id: str) -> None:
        """Freeze the node (SIGSTOP): it neither heartbeats nor notices time passing."""
        self.procs[node_id].send_signal(signal.SIGSTOP)

    def resume(self, node_id: str) -> None:
        """Let a paused node go on (SIGCONT) from where it stopped."""
        self.procs[node_id].send_signal(signal.SIGCONT)

    def stop_all(self) -> None:
        stop_processes(self.procs.values())

    def client(self) -> Engine:
        """An in-process watcher: submits and observes, never executes or leads."""
        return Engine.from_url(self.db_url, keeper=self.keeper, settings=EngineSettings(
            node_id=f"client-{os.getpid()}",
            cluster=ClusterSettings(role="watcher", unhealthy_secs=self.unhealthy_secs,
                                    heartbeat_secs=self.unhealthy_secs / 5),
        ))

    def executions(self) -> list[tuple[str, str, str, int]]:
        return [(node, iid, tid, attempt) for node, iid, tid, attempt, _ in self.timed_executions()]

    def timed_executions(self) -> list[tuple[str, str, str, int, float]]:
        """(node, instance, task, attempt, wall time at the start) per execution."""
        if not self.exec_log.exists():
            return []
        out = []
        for line in self.exec_log.read_text().splitlines():
            node, iid, tid, attempt, at = line.split()
            out.append((node, iid, tid, int(attempt), float(at)))
        return out

    def log_text(self, node_id: str) -> str:
        return self.logs[node_id].read_text(errors="replace")


def stop_processes(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each (waking a paused one first), then SIGKILL what has not stopped in 15 s."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def wait_until(pred: Any, timeout: float, what: str, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(step)


async def ready(engine: Engine, workers: int, dag_id: str = "w1", timeout: float = 30) -> str:
    """Wait until ``workers`` workers are alive, one leads, and the DAG is registered; returns
    the leader."""

    async def alive() -> bool:
        nodes = await engine.list_nodes()
        return sum(1 for n in nodes if n.alive and n.role == "worker") >= workers

    async def registered() -> bool:
        try:
            await engine.get_dag(dag_id)
            return True
        except Exception:
            return False

    await wait_until(alive, timeout, f"{workers} live workers")
    await wait_until(registered, timeout, f"DAG {dag_id} registered")
    leader: str = await wait_until(lambda: leader_of(engine), timeout, "a leader")
    return leader


async def leader_of(engine: Engine) -> str | None:
    leaders = [n.node_id for n in await engine.list_nodes() if n.is_leader and n.alive]
    assert len(leaders) <= 1, f"more than one leader: {leaders}"
    return leaders[0] if leaders else None


async def all_final(engine: Engine, ids: list[str]) -> list[InstanceRecord] | None:
    wanted = set(ids)
    listed = [i for i in await engine.list_instances(limit=10_000) if i.id in wanted]
    if len(listed) < len(wanted) or any(not i.status.is_final for i in listed):
        return None
    return listed
