"""The operator log: one INFO line per task failure, retry and timeout and per instance end,
for whoever runs a node. Each line carries the ids to find what it is about — node, instance,
DAG, task, attempt — in its text and as record attributes (``record.tideflow``), which the JSON
log format (``--log-format json``) turns into keys.

Loggers: ``tideflow.tasks`` (attempts) and ``tideflow.instances`` (ends)."""

from __future__ import annotations

import logging
from typing import Any

from ..states import InstanceStatus, TaskStatus
from ..store.records import InstanceRecord, TaskRecord

tasks_log = logging.getLogger("tideflow.tasks")
instances_log = logging.getLogger("tideflow.instances")

#: the record attribute holding the ids, for formatters
IDS_ATTR = "tideflow"


def _ids(node: str, inst: InstanceRecord, task: TaskRecord | None = None,
         attempt: int | None = None) -> dict[str, Any]:
    ids: dict[str, Any] = {"node": node, "instance": inst.id, "dag": inst.dag_id}
    if task is not None:
        ids["task"] = task.task_id
        ids["attempt"] = attempt if attempt is not None else task.attempts
    return {IDS_ATTR: ids}


def attempt_ended(node: str, inst: InstanceRecord, task: TaskRecord, attempt: int,
                  status: TaskStatus, reason: str | None, *, timed_out: bool) -> None:
    """A failed (or timed-out) attempt; other endings are not news for an operator."""
    if status != TaskStatus.FAILED or not tasks_log.isEnabledFor(logging.INFO):
        return
    what = "timed out" if timed_out else "failed"
    tasks_log.info("task %s attempt %d %s (instance %s, DAG %s, node %s): %s",
                   task.task_id, attempt, what, inst.id, inst.dag_id, node, reason,
                   extra=_ids(node, inst, task, attempt))


def retrying(node: str, inst: InstanceRecord, task: TaskRecord, delay: float,
             max_attempts: int) -> None:
    if tasks_log.isEnabledFor(logging.INFO):
        tasks_log.info("task %s retrying in %.2fs, attempt %d of %d next (instance %s, DAG %s, "
                       "node %s)", task.task_id, delay, task.attempts + 1, max_attempts,
                       inst.id, inst.dag_id, node, extra=_ids(node, inst, task))


def instance_ended(node: str, inst: InstanceRecord, status: InstanceStatus,
                   reason: str | None) -> None:
    if instances_log.isEnabledFor(logging.INFO):
        tail = f": {reason}" if reason else ""
        instances_log.info("instance %s of DAG %s ended %s (node %s)%s", inst.id, inst.dag_id,
                           status.value, node, tail, extra=_ids(node, inst))
