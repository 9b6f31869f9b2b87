"""Prometheus metrics of one engine, fed by its observer events.

Every metric carries a ``worker`` label (the engine's node id) and lives in the observer's own
:class:`~prometheus_client.CollectorRegistry`, so two engines in one process never share one.
Values that are state rather than events (heartbeat ages, the leader flag, abandoned sync
threads) are read from the engine at each scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import InputError, TideflowError
from ..states import InstanceStatus, TaskStatus
from ..store.records import InstanceRecord, NodeRecord, TaskRecord
from .fastflow import FastflowCollector, FastflowCounts

if TYPE_CHECKING:
    from ..engine.engine import Engine

log = logging.getLogger("tideflow.metrics")

PREFIX = "tideflow"
#: which metric names a scrape shows: tideflow's, Fastflow's, or both sets
NAME_SETS = ("tideflow", "fastflow", "both")
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
_DELAY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
_UNFINISHED = tuple(s.value for s in InstanceStatus if s.is_unfinished)
_PRIME_LIMIT = 10_000


class MetricsObserver:
    """Watches an engine (``engine.add_observer``) and exposes Fastflow's metrics under the
    ``tideflow_`` prefix, plus task duration, scheduling delay, instances by status, the leader
    flag, node heartbeat ages and abandoned sync threads.

    Task counters count attempts: a task that fails twice and then succeeds adds 3 to
    completed, 2 to failed and 1 to success.

    ``names``: ``"tideflow"`` (the default), ``"fastflow"`` for Fastflow's own series and
    ``worker_key`` label (:mod:`tideflow.metrics.fastflow`), so that dashboards built for
    Fastflow keep working, or ``"both"``."""

    def __init__(
        self,
        engine: Engine,
        *,
        registry: CollectorRegistry | None = None,
        attach: bool = True,
        names: str = "tideflow",
    ) -> None:
        if names not in NAME_SETS:
            raise InputError(f"metric names {names!r}: use one of {', '.join(NAME_SETS)}")
        self.engine = engine
        self.worker = engine.node_id
        self.registry = registry if registry is not None else CollectorRegistry()
        # tideflow's series are kept either way (the Fastflow set reads some of the same
        # events); without them in the names, they live in a registry nobody scrapes
        r = self.registry if names != "fastflow" else CollectorRegistry()
        w = ("worker",)
        self._completed = Counter(f"{PREFIX}_tasks_completed", "Task attempts that ended.", w,
                                  registry=r)
        self._failed = Counter(f"{PREFIX}_tasks_failed", "Task attempts that failed.", w,
                               registry=r)
        self._success = Counter(f"{PREFIX}_tasks_success", "Task attempts that succeeded.", w,
                                registry=r)
        self._duration = Histogram(
            f"{PREFIX}_task_duration_seconds", "How long task attempts ran, by how they ended.",
            ("worker", "status"), buckets=_TASK_BUCKETS, registry=r,
        )
        self._delay = Histogram(
            f"{PREFIX}_task_schedule_delay_seconds",
            "From a task being ready (or due for a retry) to its attempt starting.",
            w, buckets=_DELAY_BUCKETS, registry=r,
        )
        self._parse = Histogram(
            f"{PREFIX}_parse_duration_seconds", "Building an instance's task tree.",
            ("worker", "result"), buckets=_FAST_BUCKETS, registry=r,
        )
        self._dispatch = Histogram(
            f"{PREFIX}_dispatch_duration_seconds", "Assigning new instances to workers.",
            ("worker", "result"), buckets=_FAST_BUCKETS, registry=r,
        )
        self._dispatched = Counter(f"{PREFIX}_dispatched_instances",
                                   "Instances assigned to workers.", w, registry=r)
        self._finished = Counter(
            f"{PREFIX}_instances_finished", "Instances this node saw end, by final status.",
            ("worker", "status"), registry=r,
        )
        # pre-create the label sets, so a scrape shows zeros instead of nothing
        for c in (self._completed, self._failed, self._success, self._dispatched, self._delay):
            c.labels(self.worker)
        #: attempts in flight, (instance, task)
        self._in_flight: set[tuple[str, str]] = set()
        #: unfinished instances this node owns, by id → status
        self._unfinished: dict[str, str] = {}
        self._leader_event: bool | None = None
        self._nodes: list[NodeRecord] = []
        self._stats: dict[str, int] = {}
        self._primed = False
        r.register(_StateCollector(self))
        self.fastflow = FastflowCounts()
        if names != "tideflow":
            self.registry.register(
                FastflowCollector(self.fastflow, self.worker, lambda: len(self._in_flight)))
        if attach:
            engine.add_observer(self)

    # -- observer events (sync, on the event loop) -------------------------------------------
    def task_started(self, inst: InstanceRecord, task: TaskRecord, delay_secs: float) -> None:
        self._in_flight.add((inst.id, task.task_id))
        self._delay.labels(self.worker).observe(max(0.0, delay_secs))

    def task_finished(self, inst: InstanceRecord, task: TaskRecord, duration_secs: float) -> None:
        self._in_flight.discard((inst.id, task.task_id))
        status = task.status.value
        self._completed.labels(self.worker).inc()
        self.fastflow.completed += 1
        if task.status == TaskStatus.SUCCESS:
            self._success.labels(self.worker).inc()
            self.fastflow.success += 1
        elif task.status == TaskStatus.FAILED:
            self._failed.labels(self.worker).inc()
            self.fastflow.failed += 1
            self.fastflow.instance_failed(inst)
        self._duration.labels(self.worker, status).observe(max(0.0, duration_secs))

    def instance_changed(self, inst: InstanceRecord, old_status: str | None) -> None:
        # only what this node drives: an instance it merely submitted is counted by the
        # worker that runs it
        mine = inst.worker == self.worker
        if inst.status.is_final:
            was_mine = self._unfinished.pop(inst.id, None) is not None
            if mine or was_mine:
                self._finished.labels(self.worker, inst.status.value).inc()
        elif mine:
            self._unfinished[inst.id] = inst.status.value
        else:
            self._unfinished.pop(inst.id, None)

    def dispatched(self, count: int, elapsed_secs: float, ok: bool) -> None:
        self._dispatch.labels(self.worker, "ok" if ok else "error").observe(elapsed_secs)
        self.fastflow.dispatch_elapsed_ms = elapsed_secs * 1000
        if ok:
            self._dispatched.labels(self.worker).inc(count)
        else:
            self.fastflow.dispatch_failed += 1

    def parsed(self, inst: InstanceRecord, elapsed_secs: float, ok: bool) -> None:
        self._parse.labels(self.worker, "ok" if ok else "error").observe(elapsed_secs)
        self.fastflow.parse_elapsed_ms = elapsed_secs * 1000
        if not ok:
            self.fastflow.parse_failed += 1

    def leadership_changed(self, is_leader: bool) -> None:
        self._leader_event = is_leader

    # -- scraping ---------------------------------------------------------------------------------
    async def _prime(self) -> None:
        """Unfinished instances this node owned before it was watched (picked up at start)."""
        try:
            found = await self.engine.list_instances(status=list(_UNFINISHED),
                                                     limit=_PRIME_LIMIT)
        except TideflowError as exc:
            log.warning("metrics: could not read unfinished instances: %s", exc)
            return
        self._primed = True
        for inst in found:
            if inst.worker == self.worker:
                self._unfinished.setdefault(inst.id, inst.status.value)

    async def refresh(self) -> None:
        """Read the state-like values from the engine (done by :meth:`scrape`)."""
        if not self._primed:
            await self._prime()
        try:
            self._nodes = await self.engine.list_nodes()
            self._stats = dict(self.engine.stats)
        except TideflowError as exc:
            log.warning("metrics: could not read the engine's state: %s", exc)

    async def scrape(self) -> tuple[bytes, str]:
        """The text exposition of every metric, and its content type."""
        await self.refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def is_leader(self) -> bool:
        if self._leader_event is not None:
            return self._leader_event
        try:
            return self.engine.is_leader
        except TideflowError:
            return False


class _StateCollector(Collector):
    """Values computed at scrape time from the observer's state."""

    def __init__(self, obs: MetricsObserver) -> None:
        self.obs = obs

    def collect(self) -> Iterator[Metric]:
        obs, w = self.obs, self.obs.worker
        running = GaugeMetricFamily(f"{PREFIX}_running_tasks", "Task attempts running now.",
                                    labels=["worker"])
        running.add_metric([w], len(obs._in_flight))
        yield running
        by_status = GaugeMetricFamily(
            f"{PREFIX}_instances", "Unfinished instances this node owns, by status.",
            labels=["worker", "status"],
        )
        counts = dict.fromkeys(_UNFINISHED, 0)
        for status in obs._unfinished.values():
            counts[status] = counts.get(status, 0) + 1
        for status, n in counts.items():
            by_status.add_metric([w, status], n)
        yield by_status
        leader = GaugeMetricFamily(f"{PREFIX}_leader", "1 while this node is the leader.",
                                   labels=["worker"])
        leader.add_metric([w], 1 if obs.is_leader() else 0)
        yield leader
        age = GaugeMetricFamily(
            f"{PREFIX}_node_heartbeat_age_seconds",
            "Seconds since each node's last heartbeat, as seen by this node.",
            labels=["worker", "node"],
        )
        for node in obs._nodes:
            age.add_metric([w, node.node_id], max(0.0, float(node.heartbeat_age_secs)))
        yield age
        abandoned = CounterMetricFamily(
            f"{PREFIX}_abandoned_sync_threads",
            "Sync actions whose thread was abandoned at a timeout or cancel (a late result "
            "is discarded).",
            labels=["worker"],
        )
        abandoned.add_metric([w], obs._stats.get("abandoned_threads", 0))
        yield abandoned
