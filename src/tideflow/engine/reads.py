"""The reading verbs of :class:`~tideflow.engine.engine.Engine`: one instance, a page of
instances, and waiting for an instance to end."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import InputError
from ..states import InstanceStatus
from ..store.records import InstanceFilter, InstanceRecord

if TYPE_CHECKING:
    from ..store.base import Store
    from .runner import InstanceRunner
    from .runtime import Runtime


def _final(inst: InstanceRecord) -> bool:
    return inst.status.is_final


def is_settled(inst: InstanceRecord) -> bool:
    """Final, or waiting for a person (blocked, paused)."""
    return inst.status.is_final or inst.status in (InstanceStatus.BLOCKED, InstanceStatus.PAUSED)


class ReadVerbs:
    """The reading verbs of :class:`~tideflow.engine.engine.Engine`."""

    if TYPE_CHECKING:
        store: Store
        _runners: dict[str, InstanceRunner]

        def _require_rt(self) -> Runtime: ...
        @staticmethod
        def _snapshot(inst: InstanceRecord) -> InstanceRecord: ...

    async def get_instance(self, instance_id: str) -> InstanceRecord:
        """The instance with its tasks: live state when this node drives it."""
        self._require_rt()
        runner = self._runners.get(instance_id)
        if runner is not None:
            return self._snapshot(runner.inst)
        return await self.store.get_instance(instance_id, with_tasks=True)

    async def list_instances(
        self,
        *,
        dag_id: str | None = None,
        status: str | Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
        before_id: str | None = None,
    ) -> list[InstanceRecord]:
        """Instances newest first, without tasks; ``before_id`` pages on."""
        self._require_rt()
        statuses = None
        if status is not None:
            raw = [status] if isinstance(status, str) else list(status)
            try:
                statuses = [InstanceStatus(s) for s in raw]
            except ValueError:
                raise InputError(
                    f"unknown instance status in {raw}; known: "
                    + ", ".join(s.value for s in InstanceStatus)
                ) from None
        if limit < 1 or limit > 10_000:
            raise InputError("limit must be between 1 and 10000")
        return await self.store.list_instances(
            InstanceFilter(
                dag_id=dag_id,
                statuses=statuses,
                tags=dict(tags) if tags else None,
                created_after=created_after,
                created_before=created_before,
            ),
            limit=limit,
            before_id=before_id,
        )

    async def wait_for(
        self, instance_id: str, *, timeout: float | None = None, settled: bool = True
    ) -> InstanceRecord:
        """Wait until the instance is final (or, with ``settled``, waits for a person)."""
        self._require_rt()
        predicate = is_settled if settled else _final
        runner = self._runners.get(instance_id)
        if runner is not None:
            await runner.wait_until(predicate, timeout)
            return self._snapshot(runner.inst)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            inst = await self.store.get_instance(instance_id, with_tasks=True)
            if predicate(inst) or (deadline is not None and loop.time() >= deadline):
                return inst
            runner = self._runners.get(instance_id)
            if runner is not None:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                await runner.wait_until(predicate, remaining)
                return self._snapshot(runner.inst)
            await asyncio.sleep(0.1)
