"""Instances and tasks in the JSON shape of :mod:`tideflow.serialize`, with the secret vars of
their DAG version masked: what the HTTP API and the CLI show."""

from __future__ import annotations

from typing import Any

from .engine.engine import Engine
from .errors import NotFoundError
from .serialize import instance_to_json, secret_values_of, task_to_json
from .store.records import InstanceRecord, TaskRecord

_CACHE_LIMIT = 4096


class Views:
    """Builds response bodies. Which vars are secret is read from the instance's DAG version
    (a version never changes, so the answer is cached)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._secrets: dict[tuple[str, int], frozenset[str]] = {}

    async def secrets_of(self, inst: InstanceRecord) -> frozenset[str]:
        key = (inst.dag_id, inst.dag_version)
        found = self._secrets.get(key)
        if found is not None:
            return found
        try:
            dag = await self.engine.get_dag(inst.dag_id, inst.dag_version)
        except NotFoundError:
            # the version was deleted with its DAG: which vars were secret is unknown, so
            # none of the values is shown
            return frozenset(inst.vars)
        found = dag.definition.secret_vars()
        if len(self._secrets) >= _CACHE_LIMIT:
            self._secrets.clear()
        self._secrets[key] = found
        return found

    async def instance(self, inst: InstanceRecord, *, with_tasks: bool = True) -> dict[str, Any]:
        return instance_to_json(inst, secrets=await self.secrets_of(inst), with_tasks=with_tasks)

    async def task(self, inst: InstanceRecord, task_id: str) -> dict[str, Any]:
        task = find_task(inst, task_id)
        secrets = await self.secrets_of(inst)
        return task_to_json(task, secret_values_of(secrets, inst.vars))


def find_task(inst: InstanceRecord, task_id: str) -> TaskRecord:
    for task in inst.tasks:
        if task.task_id == task_id:
            return task
    raise NotFoundError(
        f"instance {inst.id} has no task '{task_id}'",
        details={"tasks": [t.task_id for t in inst.tasks]},
    )
