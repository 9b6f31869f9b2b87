"""Records and definitions for the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tideflow.definition.model import DagDef
from tideflow.states import InstanceStatus, TaskStatus
from tideflow.store.records import InstanceRecord, TaskRecord

#: a fixed moment with microseconds, so that lost precision shows
T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def make_dag(dag_id: str = "build", **extra: Any) -> DagDef:
    """A small valid DAG; ``extra`` overrides top-level keys of the document."""
    doc: dict[str, Any] = {
        "id": dag_id,
        "name": "Build",
        "tasks": [
            {"id": "fetch", "actionName": "shell", "params": {"cmd": ["echo", "fetch"]}},
            {"id": "compile", "actionName": "shell", "dependOn": ["fetch"]},
        ],
    }
    doc.update(extra)
    return DagDef.model_validate(doc)


def make_instance(
    instance_id: str,
    *,
    dag_id: str = "build",
    version: int = 1,
    status: InstanceStatus = InstanceStatus.INIT,
    created: float = 0,
    tags: dict[str, str] | None = None,
    worker: str | None = None,
) -> InstanceRecord:
    return InstanceRecord(
        id=instance_id,
        dag_id=dag_id,
        dag_version=version,
        status=status,
        trigger="manual",
        vars={"region": "eu"},
        created_at=at(created),
        updated_at=at(created),
        tags=dict(tags or {}),
        worker=worker,
    )


def make_tasks(instance_id: str, task_ids: list[str]) -> list[TaskRecord]:
    tasks = []
    previous: list[str] = []
    for task_id in task_ids:
        tasks.append(
            TaskRecord(
                instance_id=instance_id,
                task_id=task_id,
                name=f"task {task_id}",
                action_name="shell",
                status=TaskStatus.INIT,
                depend_on=previous,
            )
        )
        previous = [task_id]
    return tasks
