"""Fastflow's metric names, for dashboards built on Fastflow's exporter.

The series, types and the ``worker_key`` label are Fastflow's own (``pkg/exporter``):

=================================================================  =======  =================
``fastflow_executor_task_running``                                 gauge    task attempts running
``fastflow_executor_task_completed_total``                         counter  attempts that ended
``fastflow_executor_task_failed_total``                            counter  attempts that failed
``fastflow_executor_task_success_total``                           counter  attempts that succeeded
``fastflow_executor_dag_ins_failed``                               gauge    1 per instance with a
                                                                            failed task since the
                                                                            last scrape
``fastflow_parser_parse_scheduled_dag_instance_elapsed_ms``        gauge    the last parse, in ms
``fastflow_parser_parse_scheduled_dag_instance_failed_total``      counter  parses that failed
``fastflow_dispatcher_elapsed_ms``                                 gauge    the last dispatch, ms
``fastflow_dispatcher_failed_total``                               counter  dispatches that failed
=================================================================  =======  =================

``fastflow_executor_dag_ins_failed`` carries, as in Fastflow, the labels ``dag_ins_id`` and
``business_type``, ``business_action``, ``business_id`` (from the instance's tags of those
names, empty when absent); each failed instance is shown by one scrape, then forgotten, and at
most 500 wait between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..store.records import InstanceRecord

#: Fastflow keeps at most this many failed instances between two scrapes
_FAILED_CAP = 500
_BUSINESS = ("business_type", "business_action", "business_id")


@dataclass
class FastflowCounts:
    """What Fastflow's collectors count, kept by the metrics observer."""

    completed: int = 0
    failed: int = 0
    success: int = 0
    parse_elapsed_ms: float = 0.0
    parse_failed: int = 0
    dispatch_elapsed_ms: float = 0.0
    dispatch_failed: int = 0
    #: instance id -> its business_* tags, for instances with a task failed since the last scrape
    failed_instances: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def instance_failed(self, inst: InstanceRecord) -> None:
        if len(self.failed_instances) < _FAILED_CAP or inst.id in self.failed_instances:
            tags = inst.tags or {}
            self.failed_instances[inst.id] = (
                tags.get(_BUSINESS[0], ""), tags.get(_BUSINESS[1], ""), tags.get(_BUSINESS[2], "")
            )


class FastflowCollector(Collector):
    """Fastflow's series from the observer's counts, at scrape time."""

    def __init__(self, counts: FastflowCounts, worker: str, running: Callable[[], int]
                 ) -> None:
        self.counts = counts
        self.worker = worker
        self.running = running

    def collect(self) -> Iterator[Metric]:
        c, w = self.counts, [self.worker]
        running = GaugeMetricFamily("fastflow_executor_task_running",
                                    "The count of running task.", labels=["worker_key"])
        running.add_metric(w, self.running())
        yield running
        for name, text, value in (
            ("fastflow_executor_task_completed", "The count of already completed task.",
             c.completed),
            ("fastflow_executor_task_failed", "The count of already failed task.", c.failed),
            ("fastflow_executor_task_success", "The count of already succeeded task.",
             c.success),
        ):
            counter = CounterMetricFamily(name, text, labels=["worker_key"])
            counter.add_metric(w, value)
            yield counter
        failed = GaugeMetricFamily(
            "fastflow_executor_dag_ins_failed", "Instances with a task failed since the last "
            "scrape.", labels=["worker_key", "dag_ins_id", *_BUSINESS],
        )
        shown, c.failed_instances = c.failed_instances, {}
        for inst_id, business in shown.items():
            failed.add_metric([self.worker, inst_id, *business], 1)
        yield failed
        elapsed: list[tuple[str, str, float]] = [
            ("fastflow_parser_parse_scheduled_dag_instance_elapsed_ms",
             "The elapsed time of parsing a scheduled dag instance (ms).", c.parse_elapsed_ms),
            ("fastflow_dispatcher_elapsed_ms",
             "The elapsed time of dispatching init dag instances (ms).", c.dispatch_elapsed_ms),
        ]
        for name, text, ms in elapsed:
            gauge = GaugeMetricFamily(name, text, labels=["worker_key"])
            gauge.add_metric(w, ms)
            yield gauge
        for name, text, value in (
            ("fastflow_parser_parse_scheduled_dag_instance_failed",
             "The count of parse scheduled dag instance failed.", c.parse_failed),
            ("fastflow_dispatcher_failed", "The count of dispatch failed.", c.dispatch_failed),
        ):
            counter = CounterMetricFamily(name, text, labels=["worker_key"])
            counter.add_metric(w, value)
            yield counter
