"""A store that fails on purpose: errors and delays injected per method, seeded.

Real outages are slow and awkward to stage in a test. :class:`FaultyStore` wraps any store and
makes its calls fail the way a lost database connection does, so the engine's retries (and a
user's own actions and hooks that talk to the engine) can be tested in an ordinary test:

    plan = FaultPlan(default=Fault(error_before=0.05, error_after=0.05, delay=0.1))
    store = FaultyStore(make_store(url), plan, seed=7)
    async with Engine(store) as engine:
        ...                       # runs go on while calls fail now and then
        store.enabled = False     # the database is back

Three kinds of fault, drawn independently for each call:

- ``error_before``: :class:`~tideflow.errors.StoreError` raised before the call reaches the
  store: nothing happened.
- ``error_after``: the call went through (a write is committed), then StoreError is raised
  anyway. This is the ambiguous case of a connection lost before the reply arrived: whoever
  retries must do so idempotently, or a result is recorded twice or a retry fails on its own
  earlier write.
- ``delay``: a pause of up to ``max_delay_secs`` before the call (a slow or busy database).

``open`` and ``close`` are not faulted by the default entry (an engine that cannot start tests
nothing); name them in ``methods`` to fault them too. Counters of what was injected are in
:attr:`FaultyStore.injected`.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from ..cluster.keeper import Keeper
from ..cluster.scheduling import LeaderFence, Pending, SchedulingStore
from ..definition.model import DagDef
from ..errors import InputError, StoreError
from ..states import DagStatus
from .base import Store
from .records import (
    CommandRecord,
    DagRecord,
    InstanceFilter,
    InstanceRecord,
    LeaseRecord,
    LogChunk,
    NodeRecord,
    TaskRecord,
)

_T = TypeVar("_T")

#: kinds of injected fault, as counted in :attr:`FaultyStore.injected`
BEFORE, AFTER, DELAY = "before", "after", "delay"

#: methods the default entry of a plan leaves alone
_NOT_BY_DEFAULT = frozenset({"open", "close"})


@dataclass(frozen=True)
class Fault:
    """What may happen to one call: probabilities (0 to 1) of each kind of fault."""

    error_before: float = 0.0
    error_after: float = 0.0
    delay: float = 0.0
    max_delay_secs: float = 0.05

    def __post_init__(self) -> None:
        for name in ("error_before", "error_after", "delay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"fault probability {name} must be between 0 and 1, not {value}")
        if self.max_delay_secs < 0:
            raise InputError("max_delay_secs must not be negative")

    @property
    def quiet(self) -> bool:
        return not (self.error_before or self.error_after or self.delay)


NO_FAULT = Fault()


@dataclass(frozen=True)
class FaultPlan:
    """Faults per store method (by name, e.g. ``"write"``), else ``default``."""

    default: Fault = NO_FAULT
    methods: Mapping[str, Fault] = field(default_factory=dict)

    def for_method(self, name: str) -> Fault:
        found = self.methods.get(name)
        if found is not None:
            return found
        return NO_FAULT if name in _NOT_BY_DEFAULT else self.default


class FaultyStore(Store, Keeper, SchedulingStore):
    """Wraps a store (and its Keeper and scheduling parts, when it has them) and injects the
    faults of ``plan`` into its calls, drawn from ``random.Random(seed)``.

    Set :attr:`enabled` to False to stop injecting (the database is back); :attr:`injected`
    counts ``(method, kind)`` pairs, :attr:`calls` the calls per method."""

    def __init__(self, inner: Store, plan: FaultPlan | None = None, *, seed: int = 0) -> None:
        self.inner = inner
        self.plan = plan or FaultPlan()
        self.dialect = inner.dialect
        self.enabled = True
        self.injected: collections.Counter[tuple[str, str]] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(seed)

    def __getattr__(self, name: str) -> Any:
        # what only the wrapped store has (its url, engine, tables) passes through unfaulted
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def injected_total(self, kind: str | None = None) -> int:
        """How many faults were injected (of one kind: "before", "after" or "delay")."""
        return sum(n for (_, k), n in self.injected.items() if kind is None or k == kind)

    async def _call(self, method: str, call: Callable[[], Awaitable[_T]]) -> _T:
        self.calls[method] += 1
        fault = self.plan.for_method(method)
        if not self.enabled or fault.quiet:
            return await call()
        rng = self._rng
        # every draw is made up front, so one call consumes the same numbers whatever happens
        delay = rng.random() < fault.delay
        pause = rng.uniform(0.0, fault.max_delay_secs)
        before = rng.random() < fault.error_before
        after = rng.random() < fault.error_after
        if delay:
            self.injected[(method, DELAY)] += 1
            await asyncio.sleep(pause)
        if before:
            self.injected[(method, BEFORE)] += 1
            raise StoreError(f"could not {method}: connection lost (injected fault)")
        result = await call()
        if after:
            self.injected[(method, AFTER)] += 1
            raise StoreError(
                f"could not {method}: connection lost before the reply (injected fault; "
                "the call went through)"
            )
        return result

    def _keeper(self) -> Keeper:
        if not isinstance(self.inner, Keeper):
            raise InputError(f"the wrapped {type(self.inner).__name__} has no Keeper")
        return self.inner

    def _scheduling(self) -> SchedulingStore:
        if not isinstance(self.inner, SchedulingStore):
            raise InputError(f"the wrapped {type(self.inner).__name__} keeps no schedules")
        return self.inner

    # -- Store ------------------------------------------------------------------------------
    async def open(self, *, migrate: bool = True) -> None:
        await self._call("open", lambda: self.inner.open(migrate=migrate))

    async def close(self) -> None:
        await self._call("close", self.inner.close)

    async def check_ready(self) -> None:
        await self._call("check_ready", self.inner.check_ready)

    async def save_dag(self, dag: DagDef) -> DagRecord:
        return await self._call("save_dag", lambda: self.inner.save_dag(dag))

    async def get_dag(self, dag_id: str, version: int | None = None) -> DagRecord:
        return await self._call("get_dag", lambda: self.inner.get_dag(dag_id, version))

    async def list_dags(self) -> list[DagRecord]:
        return await self._call("list_dags", self.inner.list_dags)

    async def set_dag_status(self, dag_id: str, status: DagStatus) -> None:
        await self._call("set_dag_status", lambda: self.inner.set_dag_status(dag_id, status))

    async def set_dag_paused(self, dag_id: str, paused: bool) -> bool:
        result: bool = await self._call(
            "set_dag_paused", lambda: self.inner.set_dag_paused(dag_id, paused))
        return result

    async def delete_dag(self, dag_id: str, *, force: bool = False) -> None:
        await self._call("delete_dag", lambda: self.inner.delete_dag(dag_id, force=force))

    async def create_instance(self, instance: InstanceRecord, tasks: Sequence[TaskRecord]) -> None:
        await self._call("create_instance", lambda: self.inner.create_instance(instance, tasks))

    async def find_by_idempotency_key(self, dag_id: str, key: str) -> str | None:
        return await self._call("find_by_idempotency_key",
                                lambda: self.inner.find_by_idempotency_key(dag_id, key))

    async def get_instance(self, instance_id: str, *, with_tasks: bool = True) -> InstanceRecord:
        return await self._call(
            "get_instance", lambda: self.inner.get_instance(instance_id, with_tasks=with_tasks))

    async def list_instances(
        self,
        filter: InstanceFilter | None = None,
        *,
        limit: int = 100,
        before_id: str | None = None,
    ) -> list[InstanceRecord]:
        return await self._call(
            "list_instances",
            lambda: self.inner.list_instances(filter, limit=limit, before_id=before_id))

    async def write(
        self,
        instances: Sequence[InstanceRecord],
        tasks: Sequence[TaskRecord],
        *,
        new_instances: Sequence[InstanceRecord] = (),
        owner: str | None = None,
        epochs: Mapping[str, int] | None = None,
    ) -> set[str]:
        return await self._call("write", lambda: self.inner.write(
            instances, tasks, new_instances=new_instances, owner=owner, epochs=epochs))

    async def write_task_logs(self, chunks: Sequence[LogChunk]) -> None:
        await self._call("write_task_logs", lambda: self.inner.write_task_logs(chunks))

    async def read_task_logs(
        self,
        instance_id: str,
        task_id: str | None = None,
        *,
        attempt: int | None = None,
        after: int | None = None,
        limit: int = 200,
        newest: bool = False,
    ) -> list[LogChunk]:
        return await self._call("read_task_logs", lambda: self.inner.read_task_logs(
            instance_id, task_id, attempt=attempt, after=after, limit=limit, newest=newest))

    async def add_command(self, command: CommandRecord) -> int:
        return await self._call("add_command", lambda: self.inner.add_command(command))

    async def claim_commands(
        self, holder: str, instance_ids: Sequence[str] | None = None, *,
        worker: str | None = None,
    ) -> list[CommandRecord]:
        return await self._call("claim_commands", lambda: self.inner.claim_commands(
            holder, instance_ids, worker=worker))

    async def finish_commands(self, holder: str, command_ids: Sequence[int]) -> None:
        await self._call("finish_commands",
                         lambda: self.inner.finish_commands(holder, command_ids))

    async def release_commands(self, instance_ids: Sequence[str] | None = None) -> None:
        await self._call("release_commands", lambda: self.inner.release_commands(instance_ids))

    async def withdraw_command(self, command_id: int) -> bool:
        return await self._call("withdraw_command",
                                lambda: self.inner.withdraw_command(command_id))

    async def command_pending(self, command_id: int) -> bool:
        return await self._call("command_pending", lambda: self.inner.command_pending(command_id))

    async def cancel_unstarted(
        self, instance_id: str, task_ids: Sequence[str] | None, *, worker: str | None,
        now: datetime,
    ) -> bool:
        return await self._call("cancel_unstarted", lambda: self.inner.cancel_unstarted(
            instance_id, task_ids, worker=worker, now=now))

    async def change_marker(self) -> int:
        return await self._call("change_marker", self.inner.change_marker)

    # -- Keeper -----------------------------------------------------------------------------
    async def db_now(self) -> datetime:
        return await self._call("db_now", lambda: self._keeper().db_now())

    async def put_node(self, node: NodeRecord) -> datetime:
        return await self._call("put_node", lambda: self._keeper().put_node(node))

    async def get_node(self, node_id: str) -> NodeRecord | None:
        return await self._call("get_node", lambda: self._keeper().get_node(node_id))

    async def heartbeat(
        self, node_id: str, incarnation: str, *, running: int, assigned: int
    ) -> bool:
        return await self._call("heartbeat", lambda: self._keeper().heartbeat(
            node_id, incarnation, running=running, assigned=assigned))

    async def remove_node(self, node_id: str, incarnation: str) -> None:
        await self._call("remove_node", lambda: self._keeper().remove_node(node_id, incarnation))

    async def prune_nodes(self, *, role: str, older_than_secs: float) -> int:
        return await self._call("prune_nodes", lambda: self._keeper().prune_nodes(
            role=role, older_than_secs=older_than_secs))

    async def list_nodes(self, *, unhealthy_secs: float) -> list[NodeRecord]:
        return await self._call(
            "list_nodes", lambda: self._keeper().list_nodes(unhealthy_secs=unhealthy_secs))

    async def acquire_lease(self, name: str, holder: str, ttl_secs: float) -> LeaseRecord | None:
        return await self._call(
            "acquire_lease", lambda: self._keeper().acquire_lease(name, holder, ttl_secs))

    async def renew_lease(self, name: str, holder: str, token: int, ttl_secs: float) -> bool:
        return await self._call(
            "renew_lease", lambda: self._keeper().renew_lease(name, holder, token, ttl_secs))

    async def release_lease(self, name: str, holder: str, token: int) -> bool:
        return await self._call(
            "release_lease", lambda: self._keeper().release_lease(name, holder, token))

    async def get_lease(self, name: str) -> LeaseRecord | None:
        return await self._call("get_lease", lambda: self._keeper().get_lease(name))

    # -- scheduling ---------------------------------------------------------------------------
    async def pending_instances(self, limit: int) -> list[Pending]:
        return await self._call(
            "pending_instances", lambda: self._scheduling().pending_instances(limit))

    async def assign(
        self, assignments: Sequence[tuple[str, str]], fence: LeaderFence
    ) -> list[str]:
        return await self._call("assign", lambda: self._scheduling().assign(assignments, fence))

    async def set_waiting_reason(
        self, reasons: Sequence[tuple[str, str]], fence: LeaderFence
    ) -> None:
        await self._call("set_waiting_reason",
                         lambda: self._scheduling().set_waiting_reason(reasons, fence))

    async def owner_load(self) -> dict[str, int]:
        return await self._call("owner_load", lambda: self._scheduling().owner_load())

    async def orphans(self, live_workers: Sequence[str], limit: int) -> list[Pending]:
        return await self._call(
            "orphans", lambda: self._scheduling().orphans(live_workers, limit))

    async def move(
        self, moves: Sequence[tuple[Pending, str]], fence: LeaderFence
    ) -> list[str]:
        return await self._call("move", lambda: self._scheduling().move(moves, fence))

    async def last_cron_tick(self, dag_id: str) -> datetime | None:
        return await self._call("last_cron_tick",
                                lambda: self._scheduling().last_cron_tick(dag_id))

    async def fire_cron_tick(
        self, dag_id: str, tick: datetime, instance: InstanceRecord | None
    ) -> bool:
        return await self._call(
            "fire_cron_tick", lambda: self._scheduling().fire_cron_tick(dag_id, tick, instance))

    async def active_counts(self, dag_ids: Sequence[str]) -> dict[str, int]:
        return await self._call("active_counts",
                                lambda: self._scheduling().active_counts(dag_ids))

    async def bump_epochs(self, worker: str) -> int:
        return await self._call("bump_epochs", lambda: self._scheduling().bump_epochs(worker))

    async def owned(self, worker: str) -> dict[str, int]:
        return await self._call("owned", lambda: self._scheduling().owned(worker))

    async def leader_token(self) -> int:
        return await self._scheduling().leader_token()  # not faulted, as above

    async def deployment_keeper(self, keeper: str, *, record: bool) -> int | None:
        # not faulted: drawing for it would shift every fault plan's numbers
        return await self._scheduling().deployment_keeper(keeper, record=record)

    async def fence_leader(self, fence: LeaderFence, ttl_secs: float) -> bool:
        return await self._call("fence_leader",
                                lambda: self._scheduling().fence_leader(fence, ttl_secs))
