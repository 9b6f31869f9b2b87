"""The faults of the chaos run and their record: SIGKILL and restart of a node, SIGSTOP of a
node for a while then SIGCONT, a restart of the database server, and (with the etcd Keeper)
a crash of etcd, down for a while, then started again on its data.

Every fault is recorded with its wall-clock start and end (``time.time()``, the clock the
nodes, the actions and the database share on one machine), so that the invariants can tell
whether an anomaly falls inside a fault that explains it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness import Cluster


class RestartableDb(Protocol):
    """The private database server of the run (see ``tests/dbservers.py``)."""

    def restart(self) -> None: ...


class RestartableEtcd(Protocol):
    """The private etcd of the run (``PrivateEtcd`` in ``tests/dbservers.py``)."""

    def kill(self) -> None: ...

    def start(self) -> None: ...


@dataclass
class Fault:
    kind: str  # kill | pause | db-restart | etcd-restart
    start: float  # wall clock
    end: float  # wall clock: restarted, resumed, or the database reachable again
    node: str | None = None  # None for the database
    leader: bool = False
    #: a pause longer than the lease: the node was declared dead and must be fenced on waking
    past_lease: bool = False

    @property
    def secs(self) -> float:
        return self.end - self.start

    def describe(self, t0: float) -> str:
        at = f"t={self.start - t0:6.1f}s"
        if self.kind == "db-restart":
            return f"{at}  database restart, reachable again after {self.secs:.1f}s"
        if self.kind == "etcd-restart":
            return f"{at}  etcd SIGKILLed, started again on its data after {self.secs:.1f}s"
        who = f"{self.node}{' (leader)' if self.leader else ''}"
        if self.kind == "kill":
            return f"{at}  SIGKILL {who}, started again"
        length = "past the lease" if self.past_lease else "within the lease"
        return f"{at}  SIGSTOP {who} for {self.secs:.1f}s ({length}), then SIGCONT"


@dataclass
class FaultLog:
    faults: list[Fault] = field(default_factory=list)

    def of(self, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind]

    def stalled(self, node: str, start: float, end: float) -> Fault | None:
        """A pause of ``node`` or a database (or etcd) restart overlapping [start, end], if
        any: what can make a running holder outlive its TTL."""
        for f in self.faults:
            if f.kind == "pause" and f.node != node:
                continue
            if f.kind == "kill":
                continue
            if f.start <= end and start <= f.end:
                return f
        return None

    def lost(self, first: tuple[str, float], again: tuple[str, float],
             stale_secs: float) -> str | None:
        """Why a task executed on ``first`` = (node, time) ran again at ``again``: "kill"
        (the first node was killed in between: its result died with it), "pause" (the first
        node was paused past its lease in between, or either node had woken from such a
        pause less than ``stale_secs`` before its execution: a deposed node acting on
        ownership it had lost), or None."""
        (n1, t1), (n2, t2) = first, again
        for f in self.faults:
            # a kill's start is read just before the SIGKILL is sent: the process may still
            # log an execution in the moment the signal takes to land, and its new process
            # executes nothing before the kill's end (it has only just been started)
            if f.kind == "kill" and f.node == n1 and t1 <= f.end and f.start <= t2:
                return "kill"
            if f.node == n1 and t1 <= f.start <= t2 and f.kind == "pause" and f.past_lease:
                return "pause"
        for f in self.of("pause"):
            if f.past_lease and any(f.node == n and f.end <= t <= f.end + stale_secs
                                    for n, t in ((n1, t1), (n2, t2))):
                return "pause"
        return None

    def first_kill_after(self, node: str, t: float) -> float | None:
        kills = [f.start for f in self.of("kill") if f.node == node and f.start >= t]
        return min(kills, default=None)


class Injector:
    """Applies faults to a running cluster and records them. A paused node is resumed by a
    timer; a kill of a paused node ends its pause first (SIGKILL works on a stopped process,
    but the record must say the pause ended there)."""

    def __init__(self, cluster: Cluster, lease_secs: float,
                 leader: Callable[[], str | None]) -> None:
        self.cluster = cluster
        self.lease_secs = lease_secs
        self.leader = leader  # the last leader the run observed
        self.log = FaultLog()
        self._paused: dict[str, tuple[Fault, asyncio.Task[None]]] = {}
        #: restarted node -> (its log, the log's size when it was restarted)
        self._starting: dict[str, tuple[Path, int]] = {}

    def paused(self) -> set[str]:
        return set(self._paused)

    def starting(self) -> set[str]:
        """The killed nodes whose new process has not finished starting. A process killed
        again before it could start never does anything, whatever the engine: on a starved
        machine, where a start takes many seconds of scarce CPU, faulting it again and again
        would stop the whole cluster, and the run would test the machine, not the cluster."""
        done = {n for n, (log, offset) in self._starting.items()
                if _announced(log, offset, f"node {n} running")}
        for n in done:
            del self._starting[n]
        return set(self._starting)

    async def kill(self, node: str) -> None:
        pending = self._paused.pop(node, None)
        if pending is not None:
            fault, timer = pending
            timer.cancel()
            self._ended(fault)
        fault = Fault("kill", time.time(), 0.0, node, leader=node == self.leader())
        self.cluster.kill(node)
        try:
            await asyncio.sleep(0.5)
        finally:
            # even when the run ends during the pause between the kill and the start: a node
            # left dead would read as one that exited by itself
            log = self.cluster.logs[node]
            self._starting[node] = (log, log.stat().st_size if log.exists() else 0)
            self.cluster.start(node)  # the same node id: a restarted pod
            fault.end = time.time()
            self.log.faults.append(fault)

    def pause(self, node: str, secs: float) -> None:
        fault = Fault("pause", time.time(), 0.0, node, leader=node == self.leader())
        self.cluster.pause(node)
        self.log.faults.append(fault)
        timer = asyncio.get_running_loop().create_task(self._resume_after(node, fault, secs))
        self._paused[node] = (fault, timer)

    async def _resume_after(self, node: str, fault: Fault, secs: float) -> None:
        await asyncio.sleep(secs)
        if self._paused.get(node, (None,))[0] is fault:
            del self._paused[node]
            self.cluster.resume(node)
            self._ended(fault)

    async def restart_db(self, db: RestartableDb) -> None:
        fault = Fault("db-restart", time.time(), 0.0)
        self.log.faults.append(fault)
        # blocking (pg_ctl, mariadbd start-up): off the loop, so sampling goes on meanwhile
        await asyncio.to_thread(db.restart)
        fault.end = time.time()

    async def restart_etcd(self, etcd: RestartableEtcd, down_secs: float) -> None:
        """etcd crashes (SIGKILL), stays down ``down_secs``, and starts again on its data."""
        fault = Fault("etcd-restart", time.time(), 0.0)
        self.log.faults.append(fault)
        await asyncio.to_thread(etcd.kill)
        try:
            await asyncio.sleep(down_secs)
        finally:
            await asyncio.to_thread(etcd.start)
            fault.end = time.time()

    async def resume_all(self) -> None:
        for node, (fault, timer) in list(self._paused.items()):
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            self.cluster.resume(node)
            self._ended(fault)
        self._paused.clear()

    def _ended(self, pause: Fault) -> None:
        # judged by how long it lasted, not how long it was meant to: a kill may cut it short
        pause.end = time.time()
        pause.past_lease = pause.secs > self.lease_secs


def _announced(log: Path, offset: int, line: str) -> bool:
    """Whether ``line`` was written to ``log`` past ``offset``."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return line.encode() in f.read()
    except OSError:
        return False
