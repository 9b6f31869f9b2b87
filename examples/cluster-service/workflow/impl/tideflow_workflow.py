"""The :class:`workflow.Workflow` interface on a tideflow engine."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from tideflow import (
    ConflictError,
    Engine,
    InputError,
    InstanceRecord,
    NotFoundError,
)

from workflow.api import BadRequest, CommandRefused, Run, RunNotFound, StepRun
from workflow.consts import OUT_OP, OUT_OP_PREFIX, RunStatus
from workflow.impl.node import register_templates


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """tideflow's errors as the interface's, so business code never imports tideflow."""
    try:
        yield
    except NotFoundError as exc:
        raise RunNotFound(exc.message) from exc
    except ConflictError as exc:
        raise CommandRefused(exc.message) from exc
    except InputError as exc:
        raise BadRequest(exc.message) from exc


def _outputs(inst: InstanceRecord) -> dict[str, str]:
    """What the steps returned, as the interface shows it: each step's keys (``vpcId``...) as
    text, and what it did as ``op.<step>``."""
    found = dict(inst.share_data)
    for task in inst.tasks:
        if not isinstance(task.output, dict):
            continue
        for key, value in task.output.items():
            if key == OUT_OP:
                found[OUT_OP_PREFIX + task.task_id] = str(value)
            else:
                found[key] = value if isinstance(value, str) else json.dumps(value)
    return found


def _to_run(inst: InstanceRecord) -> Run:
    return Run(
        id=inst.id,
        dag_id=inst.dag_id,
        status=RunStatus(inst.status.value),
        reason=inst.reason,
        vars={k: v if isinstance(v, str) else json.dumps(v) for k, v in inst.vars.items()},
        tags=dict(inst.tags),
        outputs=_outputs(inst),
        worker=inst.worker,
        steps=tuple(
            StepRun(id=t.task_id, status=t.status.value, attempts=t.attempts, reason=t.reason)
            for t in inst.tasks
        ),
        compensation=inst.compensation,
    )


class TideflowWorkflow:
    """Runs the service's workflows on a started tideflow cluster node."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def register_dags(self) -> Sequence[str]:
        async with _translated():
            return await register_templates(self.engine)

    async def run(
        self, dag_id: str, vars: Mapping[str, str] | None = None, *, wait: float | None = None
    ) -> Run:
        async with _translated():
            return _to_run(await self.engine.run_dag(dag_id, vars, wait=wait))

    async def run_with_tags(
        self,
        dag_id: str,
        tags: Mapping[str, str],
        vars: Mapping[str, str] | None = None,
        *,
        wait: float | None = None,
    ) -> Run:
        async with _translated():
            return _to_run(await self.engine.run_dag_with_tags(dag_id, tags, vars, wait=wait))

    async def retry(
        self, run_id: str, steps: Sequence[str] | None = None, *, wait: float | None = None
    ) -> Run:
        started = time.monotonic()
        async with _translated():
            # the command's own wait ends once the owning worker took it (the run left
            # failed/canceled); the rest of the time goes to waiting for the outcome
            inst = await self.engine.retry(run_id, steps, wait=wait)
            if wait:
                left = max(0.0, wait - (time.monotonic() - started))
                inst = await self.engine.wait_for(run_id, timeout=left)
            return _to_run(inst)

    async def cancel(self, run_id: str, *, wait: float | None = None) -> Run:
        async with _translated():
            return _to_run(await self.engine.cancel(run_id, wait=wait))

    async def approve(
        self, run_id: str, step: str, inputs: Mapping[str, str], *, by: str,
        wait: float | None = None,
    ) -> Run:
        started = time.monotonic()
        async with _translated():
            # as for retry: the command's wait ends once the owning worker took it, the rest
            # of the time goes to the outcome
            inst = await self.engine.continue_(run_id, [step], inputs=inputs, by=by, wait=wait)
            if wait:
                left = max(0.0, wait - (time.monotonic() - started))
                inst = await self.engine.wait_for(run_id, timeout=left)
            return _to_run(inst)

    async def reject(
        self, run_id: str, step: str, reason: str, *, by: str, wait: float | None = None
    ) -> Run:
        started = time.monotonic()
        async with _translated():
            inst = await self.engine.reject(run_id, [step], reason=reason, by=by, wait=wait)
            if wait:
                left = max(0.0, wait - (time.monotonic() - started))
                inst = await self.engine.wait_for(run_id, timeout=left)
            return _to_run(inst)

    async def get_run(self, run_id: str) -> Run:
        async with _translated():
            return _to_run(await self.engine.get_instance(run_id))

    async def wait_run(self, run_id: str, timeout: float) -> Run:
        async with _translated():
            return _to_run(await self.engine.wait_for(run_id, timeout=timeout))

    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> Sequence[Run]:
        async with _translated():
            found = await self.engine.list_instances(
                dag_id=dag_id, tags=tags, status=status.value if status else None, limit=limit
            )
            return [_to_run(i) for i in found]

    async def close(self) -> None:
        await self.engine.close()
