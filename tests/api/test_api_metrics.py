"""A scrape of /metrics, parsed with prometheus-client's parser, against the runs made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .dags import chain
from .harness import ApiServer


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ApiServer]:
    srv = ApiServer(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, node_id="metrics-node").start()
    yield srv
    srv.stop()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_match_the_runs(fresh: ApiServer) -> None:
    w = ("worker", "metrics-node")
    with fresh.client() as c:
        assert c.post("/api/v1/dags", json=chain("m-ok", "ok", "ok", "ok")).status_code == 201
        assert c.post("/api/v1/dags", json=chain("m-bad", "fail")).status_code == 201
        assert c.post("/api/v1/dags/m-ok/run", json={"wait": 10}).json()["status"] == "success"
        assert c.post("/api/v1/dags/m-bad/run", json={"wait": 10}).json()["status"] == "failed"
        scrape = c.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    m = _samples(scrape.text)
    assert m[("tideflow_tasks_completed_total", (w,))] == 4
    assert m[("tideflow_tasks_success_total", (w,))] == 3
    assert m[("tideflow_tasks_failed_total", (w,))] == 1
    assert m[("tideflow_running_tasks", (w,))] == 0
    assert m[("tideflow_task_duration_seconds_count", (("status", "success"), w))] == 3
    assert m[("tideflow_task_duration_seconds_count", (("status", "failed"), w))] == 1
    assert m[("tideflow_task_schedule_delay_seconds_count", (w,))] == 4
    assert m[("tideflow_instances_finished_total", (("status", "success"), w))] == 1
    assert m[("tideflow_instances_finished_total", (("status", "failed"), w))] == 1
    assert m[("tideflow_instances", (("status", "running"), w))] == 0
    assert m[("tideflow_leader", (w,))] == 1
    assert m[("tideflow_abandoned_sync_threads_total", (w,))] == 0
    age = m[("tideflow_node_heartbeat_age_seconds", (("node", "metrics-node"), w))]
    assert 0 <= age < 10
    # the leader dispatched both instances (in a cluster, dispatch is the leader's)
    assert m[("tideflow_dispatched_instances_total", (w,))] == 2
    assert sum(v for (name, _), v in m.items()
               if name == "tideflow_dispatch_duration_seconds_count") >= 1
