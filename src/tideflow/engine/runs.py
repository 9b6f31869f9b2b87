"""The run verbs of :class:`~tideflow.engine.engine.Engine`: starting an instance (by hand,
by idempotency key, by a cron tick) and handing it on to the Dispatcher, to its DAG's
maxActiveRuns queue, or to a runner here."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..clock import utcnow
from ..definition.model import DagDef
from ..errors import ConflictError, InputError, InvalidStateError, StoreError
from ..states import DagStatus, InstanceStatus, Trigger
from ..store.records import DagRecord, InstanceRecord, TaskRecord
from ..vars import check_priority, resolve_run_vars, validate_tags
from . import compensation
from .reads import is_settled

if TYPE_CHECKING:
    from ..actions.base import ActionRegistry
    from ..cluster.node import ClusterNode
    from ..ids import IdGenerator
    from ..limits import Limits
    from ..tracing.otel import TracingObserver
    from .compiled import CompiledDag
    from .observer import Observers
    from .runner import InstanceRunner
    from .runtime import Runtime

log = logging.getLogger("tideflow.engine")


class RunVerbs:
    """The run verbs of :class:`~tideflow.engine.engine.Engine`."""

    if TYPE_CHECKING:
        actions: ActionRegistry
        limits: Limits
        node_id: str
        _cluster: ClusterNode | None
        _tracing: TracingObserver | None
        _ids: IdGenerator
        _observers: Observers
        _runners: dict[str, InstanceRunner]
        _waiting: dict[str, collections.deque[tuple[InstanceRecord, CompiledDag]]]

        def _require_rt(self) -> Runtime: ...
        async def _newest_dag(self, dag_id: str) -> DagRecord: ...
        async def _compile(self, record: DagRecord) -> CompiledDag: ...
        async def _compiled_dag(self, dag_id: str, version: int | None = None
                                ) -> CompiledDag: ...
        @staticmethod
        def _snapshot(inst: InstanceRecord) -> InstanceRecord: ...
        async def _start_runner(self, inst: InstanceRecord, compiled: CompiledDag, *,
                                recovering: bool = False) -> InstanceRunner: ...
        async def wait_for(self, instance_id: str, *, timeout: float | None = None,
                           settled: bool = True) -> InstanceRecord: ...
        async def get_instance(self, instance_id: str) -> InstanceRecord: ...

    async def run_dag(
        self,
        dag_id: str,
        vars: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        selector: Mapping[str, str] | None = None,
        wait: float | None = None,
        trigger: str = Trigger.MANUAL,
        priority: int = 0,
        idempotency_key: str | None = None,
        trace_parent: str | None = None,
    ) -> InstanceRecord:
        """Start an instance of the newest version of ``dag_id``. With ``wait`` (seconds),
        return once it is final or waits for a person, or the time is up.

        ``trace_parent``: a W3C ``traceparent`` whose trace the run continues (an invalid one
        is ignored); when tracing is on and none is given, the span current in the caller.

        With ``idempotency_key``, a run of the same DAG submitted again with the same key (from
        any process, also concurrently) returns the instance the first one created."""
        rt = self._require_rt()
        if idempotency_key is not None:
            if not idempotency_key or len(idempotency_key) > 191:
                raise InputError("idempotency key must be 1 to 191 characters")
            found = await rt.store.find_by_idempotency_key(dag_id, idempotency_key)
            if found is not None:
                return await self._existing(found, wait)
        newest = await self._newest_dag(dag_id)
        # from the record just read: runs submitted together must not each read it again
        compiled = await self._compile(newest)
        record = compiled.record
        # the status is read fresh each run: it changes without a new version
        if newest.status != DagStatus.NORMAL:
            raise InvalidStateError(
                f"DAG '{dag_id}' is {newest.status.value}: only a normal DAG runs "
                f"(set its status to normal first)",
                state=newest.status.value,
            )
        run_vars = resolve_run_vars(record.definition, vars)
        self.limits.check_vars(run_vars)
        # validate_tags checks the type itself: dict() first would take a list of pairs
        run_tags = validate_tags(tags)
        run_selector = validate_tags(selector, what="selector label")
        priority = check_priority(priority)
        missing = sorted(record.definition.action_names() - self.actions.names())
        if missing and self._cluster is None:
            raise InvalidStateError(
                f"DAG '{dag_id}' uses actions this node does not have: {', '.join(missing)}",
                state="unrunnable",
            )
        inst = self._new_instance(record, run_vars, run_tags, run_selector, str(trigger),
                                  priority, idempotency_key)
        inst.trace_parent = self._trace_parent(trace_parent)
        held = self._over_limit(record.definition)
        if held:
            inst.status = InstanceStatus.INIT
            inst.reason = held
        if idempotency_key is None:
            await rt.commits.create(inst)
        else:
            found = await self._create_keyed(inst, idempotency_key)
            if found != inst.id:
                return await self._existing(found, wait)
        return await self._launch_new(inst, compiled, wait)

    async def _create_keyed(self, inst: InstanceRecord, key: str) -> str:
        """Insert an instance that has an idempotency key in its own transaction (the unique
        key, not timing, decides which submission wins); returns the id of the instance that
        holds the key: ``inst.id`` or the earlier one.

        A lost connection is retried with back-off, like the group commit's writes: the
        instance is accepted once the caller handed it over. An attempt whose commit went
        through unseen makes the next one conflict, on the key of this very instance: then
        it is ours and goes on."""
        rt = self._require_rt()
        failures = 0
        while True:
            try:
                await rt.store.create_instance(inst, inst.tasks)
                return inst.id
            except ConflictError:
                found = await rt.store.find_by_idempotency_key(inst.dag_id, key)
                if found is None:
                    raise
                return found
            except StoreError as exc:
                failures += 1
                if failures == 1:
                    log.warning("could not create instance %s, retrying with back-off: %s",
                                inst.id, exc)
                delay = min(5.0, 0.05 * 2 ** min(failures, 10)) * (0.5 + random.random() / 2)
                await asyncio.sleep(delay)

    def _trace_parent(self, given: str | None) -> str | None:
        from ..tracing import parse_traceparent

        if given is not None:
            return parse_traceparent(given)
        return self._tracing.current_parent() if self._tracing is not None else None

    def _new_instance(
        self,
        record: DagRecord,
        run_vars: dict[str, Any],
        tags: dict[str, str],
        selector: dict[str, str],
        trigger: str,
        priority: int = 0,
        idempotency_key: str | None = None,
        cron_tick: datetime | None = None,
    ) -> InstanceRecord:
        now = utcnow()
        clustered = self._cluster is not None
        inst = InstanceRecord(
            id=self._ids.new(),
            dag_id=record.id,
            dag_version=record.version,
            # in a cluster the leader's Dispatcher assigns it to a worker
            status=InstanceStatus.INIT if clustered else InstanceStatus.SCHEDULED,
            trigger=trigger,
            vars=run_vars,
            created_at=now,
            updated_at=now,
            tags=tags,
            selector=selector,
            worker=None if clustered else self.node_id,
            priority=priority,
            idempotency_key=idempotency_key,
            cron_tick=cron_tick,
        )
        inst.tasks = [
            TaskRecord(
                instance_id=inst.id,
                task_id=t.id,
                name=t.display_name,
                action_name=t.action_name,
                depend_on=list(t.depend_on),
            )
            for t in record.definition.tasks
        ]
        # the compensation steps are tasks of the instance from the start (init until needed)
        inst.tasks.extend(compensation.records(inst.id, compensation.steps(record.definition)))
        return inst

    def _over_limit(self, dag: DagDef) -> str | None:
        """On a single node: why a new instance of ``dag`` must wait (maxActiveRuns), or
        None. In a cluster the Dispatcher applies the limit."""
        limit = dag.max_active_runs
        if limit is None or self._cluster is not None:
            return None
        if self._active_here(dag.id) < limit and not self._waiting.get(dag.id):
            return None
        return f"waiting: maxActiveRuns {limit} reached"

    def _active_here(self, dag_id: str) -> int:
        """Instances of ``dag_id`` this node drives that count against maxActiveRuns."""
        return sum(1 for r in self._runners.values()
                   if r.inst.dag_id == dag_id and r.inst.status != InstanceStatus.INIT
                   and not r.finished)

    async def _launch_new(
        self, inst: InstanceRecord, compiled: CompiledDag, wait: float | None
    ) -> InstanceRecord:
        """Hand a just-created instance on: to the Dispatcher (cluster), to the queue of its
        DAG (limit reached), or to a runner here."""
        rt = self._require_rt()
        if rt.observers:
            rt.observers.emit("instance_changed", inst, None)
        if self._cluster is not None:
            self._cluster.waker.notify()
            if wait:
                return await self.wait_for(inst.id, timeout=wait)
            return self._snapshot(inst)
        if inst.status == InstanceStatus.INIT:
            self._waiting.setdefault(inst.dag_id, collections.deque()).append((inst, compiled))
            if wait:
                return await self.wait_for(inst.id, timeout=wait)
            return self._snapshot(inst)
        # a single node is its own leader: it assigns the instance to itself at once
        rt.observers.emit("dispatched", 1, 0.0, True)
        runner = await self._start_runner(inst, compiled)
        if wait:
            await runner.wait_until(is_settled, wait)
        return self._snapshot(runner.inst)

    async def _admit_waiting(self, dag_id: str) -> None:
        """Start the oldest waiting instances of ``dag_id`` the limit now allows."""
        queue = self._waiting.get(dag_id)
        while queue:
            inst, compiled = queue[0]
            if self._active_here(dag_id) >= (compiled.dag.max_active_runs or 0):
                return
            queue.popleft()
            inst.reason = None
            self._observers.emit("dispatched", 1, 0.0, True)
            await self._start_runner(inst, compiled)

    async def fire_cron_tick(self, record: DagRecord, tick: datetime) -> bool:
        """Start the run of one cron tick (exactly once across the cluster: False when the
        tick fired already)."""
        rt = self._require_rt()
        dag = record.definition
        sched = rt.store
        from ..cluster.scheduling import SchedulingStore

        if not isinstance(sched, SchedulingStore):
            raise InputError("this store cannot keep schedules")
        compiled = await self._compiled_dag(record.id, record.version)
        limit = dag.max_active_runs
        if limit is not None and dag.cron_overlap == "skip":
            if self._cluster is not None:
                active = (await sched.active_counts([dag.id])).get(dag.id, 0)
            else:
                active = 0 if self._over_limit(dag) is None else limit
            if active >= limit:
                log.warning("cron: %s tick %s skipped: maxActiveRuns %d reached",
                            dag.id, tick.isoformat(), limit)
                return await sched.fire_cron_tick(dag.id, tick, None)
        inst = self._new_instance(record, resolve_run_vars(dag, dag.cron_vars), {}, {},
                                  Trigger.CRON, cron_tick=tick)
        held = self._over_limit(dag)
        if held:
            inst.status = InstanceStatus.INIT
            inst.reason = held
        if not await sched.fire_cron_tick(dag.id, tick, inst):
            return False
        await self._launch_new(inst, compiled, None)
        return True

    async def _existing(self, instance_id: str, wait: float | None) -> InstanceRecord:
        if wait:
            return await self.wait_for(instance_id, timeout=wait)
        return await self.get_instance(instance_id)

    async def run_dag_with_tags(
        self,
        dag_id: str,
        tags: Mapping[str, str],
        vars: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> InstanceRecord:
        """Fastflow's RunDagWithTags."""
        return await self.run_dag(dag_id, vars, tags, **kwargs)
