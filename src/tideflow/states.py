"""States of DAG instances and task instances, and which of them are final."""

from __future__ import annotations

from enum import StrEnum


class DagStatus(StrEnum):
    NORMAL = "normal"
    STOPPED = "stopped"


class InstanceStatus(StrEnum):
    INIT = "init"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    BLOCKED = "blocked"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_INSTANCE

    @property
    def is_unfinished(self) -> bool:
        """Not yet ended: the engine still owes it work or a person owes it a decision."""
        return self not in _FINAL_INSTANCE


_FINAL_INSTANCE = frozenset(
    {InstanceStatus.SUCCESS, InstanceStatus.FAILED, InstanceStatus.CANCELED}
)


class TaskStatus(StrEnum):
    INIT = "init"
    RUNNING = "running"
    ENDING = "ending"
    RETRYING = "retrying"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"
    BLOCKED = "blocked"
    CONTINUE = "continue"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        """Final for the task tree: nothing more happens without a command."""
        return self in _FINAL_TASK

    @property
    def lets_children_run(self) -> bool:
        return self in (TaskStatus.SUCCESS, TaskStatus.SKIPPED)


_FINAL_TASK = frozenset(
    {TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.SKIPPED}
)


class Trigger(StrEnum):
    MANUAL = "manual"
    CRON = "cron"
    API = "api"
