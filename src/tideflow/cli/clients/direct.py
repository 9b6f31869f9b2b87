"""The client straight on a database, through an engine that joins the deployment as a
watcher: it submits, commands and reads, and executes nothing. Runs it submits are dispatched
to the workers (``tideflow server``) on that database; commands are queued for the worker
that drives the instance.

When nothing takes the work — no worker on the database, no ``tideflow run`` driving the
instance (the embedded SQLite case) — the client drives it itself, to its end or until it
waits for a person, so that ``tideflow ins retry ID`` after a failed ``tideflow run`` really
retries: it adopts the instance (recovering it once after a killed process) and applies the
queued commands before anything starts. It does so only with every action the DAG uses
(``--actions``); without them it changes nothing and says why."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...cluster.settings import ClusterSettings
from ...engine.engine import Engine
from ...engine.settings import client_node_id
from ...errors import InvalidStateError, StoreError
from ...serialize import applied_dag_json, dag_to_json, node_to_json
from ...store.records import InstanceRecord
from ...views import Views
from ..common import KEEPER_ENV, build_engine
from .base import Client, InstanceQuery, Json

log = logging.getLogger("tideflow.cli")

#: how long a queued command or a new run may wait for a worker before the client drives it
_HANDOVER_SECS = 2.0
#: how long the client keeps trying to join the cluster (a Keeper out of reach) before it
#: gives up
_JOIN_SECS = 3.0


class DirectClient(Client):
    def __init__(self, db: str, *, actions: Sequence[str] = (), table_prefix: str = "tf_"
                 ) -> None:
        self.target = db
        self._db = db
        self._actions = tuple(actions)
        self._table_prefix = table_prefix
        self._engine: Engine | None = None
        self._local: Engine | None = None
        self._views: Views | None = None

    async def open(self) -> None:
        # the client joins as a watcher where the servers keep their membership: with
        # TIDEFLOW_KEEPER, in etcd (it must see the workers to leave runs to them)
        engine = build_engine(self._db, actions=self._actions, recover=False,
                              table_prefix=self._table_prefix,
                              keeper=os.environ.get(KEEPER_ENV),
                              cluster=ClusterSettings(role="watcher"),
                              node_id=client_node_id())
        try:
            # a node retries joining for as long as it runs; a command gives up and says why
            async with asyncio.timeout(_JOIN_SECS):
                await engine.start()
        except TimeoutError:
            await engine.close()
            keeper = os.environ.get(KEEPER_ENV)
            where = f"etcd at {keeper} ({KEEPER_ENV})" if keeper else "the database"
            raise StoreError(f"cannot join the cluster within {_JOIN_SECS:.0f}s: "
                             f"{where} cannot be reached") from None
        except BaseException:
            await engine.close()
            raise
        self._engine, self._views = engine, Views(engine)

    async def close(self) -> None:
        if self._local is not None:
            await self._local.close()
        if self._engine is not None:
            await self._engine.close()

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "open the client first"
        return self._engine

    @property
    def views(self) -> Views:
        assert self._views is not None, "open the client first"
        return self._views

    async def apply_dag(self, path: Path) -> Json:
        return applied_dag_json(await self.engine.register_dag(path))

    async def list_dags(self) -> list[Json]:
        return [dag_to_json(d) for d in await self.engine.list_dags()]

    async def get_dag(self, dag_id: str, *, fire_times: int = 5) -> Json:
        return dag_to_json(await self.engine.get_dag(dag_id), fire_times=fire_times)

    async def set_dag_paused(self, dag_id: str, paused: bool) -> Json:
        verb = self.engine.pause_dag if paused else self.engine.resume_dag
        return dag_to_json(await verb(dag_id))

    async def delete_dag(self, dag_id: str, *, force: bool) -> None:
        await self.engine.delete_dag(dag_id, force=force)

    async def _nobody_took(self, instance_id: str, command_id: int | None) -> bool:
        """Wait a moment for a worker or another process to take the work; True when none
        did."""
        store = self.engine.store
        if command_id is None and await self._a_worker_is_alive():
            # A new run is only ever taken by the leader's Dispatcher: with a live worker it
            # will be, now or when a matching worker frees up, so `dag run` returns at once.
            return False
        deadline = asyncio.get_running_loop().time() + _HANDOVER_SECS
        while asyncio.get_running_loop().time() < deadline:
            if command_id is not None:
                if not await store.command_pending(command_id):
                    return False
            else:
                inst = await store.get_instance(instance_id, with_tasks=False)
                if inst.worker is not None or inst.status.value != "init":
                    return False
            await asyncio.sleep(0.1)
        # a worker is there: it will take it (maybe after a failover)
        return not await self._a_worker_is_alive()

    async def _a_worker_is_alive(self) -> bool:
        return any(n.alive and n.role == "worker" for n in await self.engine.list_nodes())

    def _driver(self) -> Engine:
        """The engine that drives an instance here when nothing else does (not started)."""
        if self._local is None:
            self._local = build_engine(self._db, actions=self._actions, recover=False,
                                       table_prefix=self._table_prefix)
        return self._local

    async def _missing_actions(self, instance_id: str) -> list[str]:
        """The actions the instance's DAG uses that this client was not given."""
        inst = await self.engine.store.get_instance(instance_id, with_tasks=False)
        needed = await self.engine.dag_actions(inst.dag_id, inst.dag_version)
        return sorted(needed - self._driver().actions.names())

    async def _drive_here(self, instance_id: str) -> InstanceRecord:
        """Drive the instance in this process: it is recovered once, the commands queued for
        it apply before anything starts, and it runs to its end or until it waits for a
        person. Returns what the database then holds."""
        log.warning("no worker or process drives instance %s: driving it here", instance_id)
        engine, self._local = self._driver(), None
        async with engine:
            await engine.adopt(instance_id)
            await engine.wait_for(instance_id, settled=True)
        return await self.engine.store.get_instance(instance_id, with_tasks=True)

    async def run_dag(
        self,
        dag_id: str,
        *,
        vars: Mapping[str, str],
        tags: Mapping[str, str],
        selector: Mapping[str, str],
        priority: int,
        idempotency_key: str | None,
        wait: float | None,
    ) -> Json:
        inst = await self.engine.run_dag(
            dag_id, vars, tags, selector=selector, priority=priority,
            idempotency_key=idempotency_key,
        )
        if inst.status.value == "init" and await self._nobody_took(inst.id, None):
            missing = await self._missing_actions(inst.id)
            if missing:
                raise InvalidStateError(
                    f"instance {inst.id} waits for a worker: its DAG uses actions this "
                    f"client does not have ({', '.join(missing)}) and no worker runs on the "
                    "database. Give --actions MODULE to run it from here, start a worker "
                    f"that has them, or cancel it (tideflow ins cancel {inst.id})",
                    state="init",
                )
            inst = await self._drive_here(inst.id)
        elif wait:
            inst = await self.engine.wait_for(inst.id, timeout=wait)
        return await self.views.instance(inst)

    async def list_instances(self, query: InstanceQuery) -> tuple[list[Json], str | None]:
        found = await self.engine.list_instances(
            dag_id=query.dag_id,
            status=list(query.statuses) or None,
            tags=query.tags or None,
            created_after=query.created_after,
            created_before=query.created_before,
            limit=query.limit + 1,
            before_id=query.cursor,
        )
        page = found[: query.limit]
        cursor = page[-1].id if len(found) > query.limit else None
        return [await self.views.instance(i, with_tasks=False) for i in page], cursor

    async def get_instance(self, instance_id: str) -> Json:
        return await self.views.instance(await self.engine.get_instance(instance_id))

    async def command(
        self, kind: str, instance_id: str, task_ids: Sequence[str] | None, wait: float | None,
        decision: Mapping[str, Any] | None = None,
    ) -> Json:
        e = self.engine
        ids = list(task_ids) if task_ids else None
        inst = await _apply(e, kind, instance_id, ids, decision or {})
        command_id = e.last_queued_command
        if command_id is not None and await self._nobody_took(instance_id, command_id):
            missing = await self._missing_actions(instance_id)
            if missing and await e.store.withdraw_command(command_id):
                raise InvalidStateError(
                    f"cannot {kind} instance {instance_id} from here: no worker or process "
                    f"drives it, and its DAG uses actions this client does not have "
                    f"({', '.join(missing)}); nothing was done. Give --actions MODULE (as "
                    "for tideflow run) to drive it from here, or start a worker that has them",
                    state=inst.status.value,
                )
            if not missing:
                inst = await self._drive_here(instance_id)
            elif wait:  # taken meanwhile
                inst = await e.wait_for_command(instance_id, kind, command_id, wait)
        elif wait:
            inst = await e.wait_for_command(instance_id, kind, command_id, wait)
        return await self.views.instance(inst)

    async def list_nodes(self) -> list[Json]:
        # this client is a node only while the command runs: not part of the deployment
        nodes = await self.engine.list_nodes()
        return [node_to_json(n) for n in nodes
                if (n.node_id, n.incarnation) != (self.engine.node_id, self.engine.incarnation)]

    async def task_logs(self, instance_id: str, task_id: str | None, *, attempt: int | None,
                        after: int | None, tail: int | None) -> Json:
        page = await self.engine.task_logs(instance_id, task_id, attempt=attempt, after=after,
                                           tail=tail)
        return page.to_json()

    async def follow_task_logs(self, instance_id: str, task_id: str | None, *,
                               attempt: int | None, after: int | None) -> AsyncIterator[Json]:
        async for line in self.engine.follow_task_logs(instance_id, task_id, attempt=attempt,
                                                       after=after):
            yield line.to_json()


async def _apply(engine: Engine, kind: str, instance_id: str, ids: list[str] | None,
                 decision: Mapping[str, Any]) -> InstanceRecord:
    """One command verb of ``engine`` by its name; ``decision`` is what a continue or a
    reject carries (``inputs``, ``by``, ``reason``)."""
    if kind == "pause":
        return await engine.pause(instance_id)
    if kind == "resume":
        return await engine.resume(instance_id)
    if kind == "retry":
        return await engine.retry(instance_id, ids)
    if kind == "cancel":
        return await engine.cancel(instance_id, ids)
    if kind == "reject":
        return await engine.reject(instance_id, ids, reason=decision.get("reason"),
                                   by=decision.get("by"))
    return await engine.continue_(instance_id, ids, inputs=decision.get("inputs"),
                                  by=decision.get("by"))
