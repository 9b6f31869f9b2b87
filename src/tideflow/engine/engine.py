"""The Engine: the public, Fastflow-style API of one tideflow node.

    async with Engine.from_url("sqlite:///tideflow.db") as engine:
        await engine.register_dag("examples/create-cluster.yaml")
        inst = await engine.run_dag("create-cluster", vars={"region": "eu"}, wait=60)

Every verb is a coroutine; :class:`tideflow.SyncEngine` wraps them for sync callers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..actions.base import ActionRegistry
from ..actions.builtin import register_builtins
from ..clock import Clock, utcnow
from ..errors import (
    EngineClosedError,
    InputError,
    InvalidStateError,
    TideflowError,
)
from ..ids import IdGenerator
from ..states import InstanceStatus, TaskStatus
from ..store.base import Store
from ..store.records import (
    DagRecord,
    InstanceFilter,
    InstanceRecord,
    NodeRecord,
)
from .cluster_host import ClusterHost
from .commands import CommandVerbs
from .compiled import CompiledDag
from .dags import DagVerbs
from .executor import Executor
from .group_commit import GroupCommit
from .hooks import HookFn, Hooks
from .logreads import LogVerbs
from .observer import Observers
from .offload import DefinitionWork
from .reads import ReadVerbs
from .runner import InstanceRunner
from .runs import RunVerbs
from .runtime import Runtime
from .settings import EngineSettings
from .tasklogs import TaskLogSink

if TYPE_CHECKING:
    from ..cluster.cron import CronTrigger
    from ..cluster.keeper import ExternalKeeper, Keeper
    from ..cluster.mutex import Mutex
    from ..cluster.node import ClusterNode
    from ..cluster.settings import ClusterSettings
    from ..cluster.waker import Waker
    from ..tracing.otel import TracingObserver

log = logging.getLogger("tideflow.engine")


_UNFINISHED = [s for s in InstanceStatus if s.is_unfinished]
_IN_FLIGHT = (TaskStatus.RUNNING, TaskStatus.ENDING, TaskStatus.RETRYING)



#: how long close() lets the background loops end by themselves before cancelling them
_STOP_GRACE_SECS = 1.0


class Engine(RunVerbs, DagVerbs, CommandVerbs, ReadVerbs, LogVerbs, ClusterHost):
    """One tideflow node built from its parts: a store, actions and settings."""

    def __init__(
        self,
        store: Store,
        *,
        actions: ActionRegistry | None = None,
        settings: EngineSettings | None = None,
        builtin_actions: bool = True,
        keeper: ExternalKeeper | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or EngineSettings()
        #: membership, leader election and mutexes outside the store (etcd); None: the
        #: store's own
        self.external_keeper = keeper
        #: what retry back-off, ``wait`` tasks, ``ctx.sleep`` and the cron trigger sleep on
        self.clock = clock or Clock()
        #: checked here, so that a bad size limit is refused before anything starts
        self.limits = self.settings.limits()
        self.store = store
        #: the attempts' logs, written in batches (checked here too: a bad cap is refused
        #: before anything starts)
        self._task_logs = TaskLogSink(store, enabled=self.settings.task_logs,
                                      max_bytes=self.settings.task_log_max_bytes,
                                      flush_secs=self.settings.task_log_flush_secs)
        self.actions = actions or ActionRegistry()
        self.hooks = Hooks()
        self.node_id = self.settings.resolved_node_id()
        if builtin_actions:
            register_builtins(
                self.actions,
                python_allowed_prefixes=self.settings.python_allowed_prefixes,
                skip_existing=True,
            )
        self._ids = IdGenerator()
        #: the id of the command the last command call queued for another process (None
        #: when it was applied here)
        self.last_queued_command: int | None = None
        #: queued commands applied here and not yet deleted, and those being applied now
        self._commands_applied: set[int] = set()
        self._commands_applying: set[int] = set()
        self._cluster: ClusterNode | None = None
        #: coroutines started whenever this node becomes the leader (the cron trigger)
        self.leader_hooks: list[Callable[[ClusterNode], Awaitable[None]]] = []
        self._incarnation = uuid.uuid4().hex
        self._started_at: datetime | None = None
        self._observers = Observers()
        #: the tracing observer the engine added itself (settings.otel, OTEL_*)
        self._tracing: TracingObserver | None = None
        self._compiled: dict[tuple[str, int], CompiledDag] = {}
        #: reading, checking and compiling definitions, off the event loop
        self.definitions = DefinitionWork()
        self._dag_reads: dict[str, asyncio.Future[DagRecord]] = {}
        #: single node: instances held back by their DAG's maxActiveRuns, oldest first
        self._waiting: dict[str, collections.deque[tuple[InstanceRecord, CompiledDag]]] = {}
        self._runners: dict[str, InstanceRunner] = {}
        self._rt: Runtime | None = None
        self._background: list[asyncio.Task[None]] = []
        self._wake_commands = asyncio.Event()
        #: set when close() begins: the loops that wait on it end at once
        self._stopping = asyncio.Event()
        #: a single node's notification channel (PostgreSQL); a cluster node has its own
        self._waker: Waker | None = None
        self._started = False
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str = "sqlite:///tideflow.db",
        *,
        actions: ActionRegistry | None = None,
        settings: EngineSettings | None = None,
        builtin_actions: bool = True,
        keeper: str | None = None,
        clock: Clock | None = None,
    ) -> Engine:
        """An engine on the database at ``url`` (``sqlite:///file.db``, ``mysql://...``,
        ``postgresql://...``); with ``keeper`` (``etcd://host:2379``), its cluster's
        membership, leader election and mutexes live there instead."""
        from ..store.url import make_store

        settings = settings or EngineSettings()
        store = make_store(url, table_prefix=settings.table_prefix)
        external = None
        if keeper:
            from ..cluster.etcd import make_keeper

            external = make_keeper(keeper, store, table_prefix=settings.table_prefix)
        return cls(
            store,
            actions=actions,
            settings=settings,
            builtin_actions=builtin_actions,
            keeper=external,
            clock=clock,
        )

    @property
    def keeper(self) -> Keeper | None:
        """Where membership, leases and mutexes live: the external Keeper, or the store
        when it is one (the SQL store); None for a store that keeps no leases."""
        from ..cluster.keeper import Keeper

        if self.external_keeper is not None:
            return self.external_keeper
        return self.store if isinstance(self.store, Keeper) else None

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store (migrating it when allowed) and pick up unfinished instances."""
        if self._closed:
            raise EngineClosedError("this engine was closed; build a new one")
        if self._started:
            return
        await self.store.open(migrate=self.settings.migrate)
        if self.external_keeper is not None:
            if self.settings.cluster is not None:
                self.external_keeper.configure(
                    unhealthy_secs=self.settings.cluster.unhealthy_secs,
                    lease_secs=self.settings.cluster.lease_secs)
            try:
                await self.external_keeper.open()
            except BaseException:
                await self.store.close()
                raise
        self._started_at = utcnow()
        clustered = self.settings.cluster is not None
        commits = GroupCommit(
            self.store,
            owner=self.node_id if clustered else None,
            epochs=(lambda: {i: r.inst.epoch for i, r in self._runners.items()})
            if clustered else None,
            on_fenced=self._abandon if clustered else None,
        )
        commits.start()
        task_logs = self._task_logs
        task_logs.start()
        self._rt = Runtime(
            settings=self.settings,
            node_id=self.node_id,
            store=self.store,
            keeper=self.keeper,
            commits=commits,
            executor=Executor(
                concurrency=self.settings.concurrency, sync_threads=self.settings.sync_threads
            ),
            actions=self.actions,
            hooks=self.hooks,
            limits=self.limits,
            observers=self._observers,
            clock=self.clock,
            task_logs=task_logs,
        )
        self._started = True
        self._start_tracing()
        if self.settings.cluster is not None:
            await self._start_cluster(self.settings.cluster)
            return
        url = getattr(self.store, "url", None)
        if url is not None and url.backend == "postgresql":
            # queued commands and DAG changes are notified: no idle polling
            from ..cluster.waker import make_waker

            self._waker = make_waker(url.url, url.backend, self.settings.table_prefix)
            await self._waker.start()
        elif url is not None and url.backend == "sqlite":
            # the command loop's look at the file's change counter, which every other
            # writer moves, wakes the cron trigger: it need not read the DAGs every second
            from ..cluster.waker import Waker

            self._waker = Waker()
        if self.settings.recover:
            await self._recover()
            # a single node that drives its database is its own leader: it runs the schedules
            waker = self._waker
            self._background.append(
                asyncio.get_running_loop().create_task(
                    self._cron_trigger().run(
                        waker.channel() if waker is not None else None,
                        self.settings.command_catchup_secs, self._stopping),
                    name="tideflow-cron",
                )
            )
        self._background.append(
            asyncio.get_running_loop().create_task(
                self._command_loop(), name="tideflow-commands"
            )
        )

    def _start_tracing(self) -> None:
        from ..tracing import tracing_wanted

        if self._tracing is None and tracing_wanted(self.settings.otel, os.environ):
            self.enable_tracing()

    def enable_tracing(self, tracer_provider: Any = None) -> None:
        """Trace this engine's instances and attempts with OpenTelemetry (the ``otel``
        extra): to ``tracer_provider``, else to the global provider when the application set
        one, else to a provider built from the ``OTEL_*`` environment variables (OTLP over
        HTTP), which close() flushes. An engine also turns tracing on by itself at start
        when ``settings.otel`` or those variables say so."""
        if self._tracing is not None:
            raise InputError("tracing is on already")
        from ..extras import require_otel_extra

        require_otel_extra("tracing (settings.otel or the OTEL_* environment variables)")
        from ..tracing.otel import TracingObserver

        self._tracing = TracingObserver(self.node_id, tracer_provider)
        self._observers.add(self._tracing)

    async def _start_cluster(self, cluster: ClusterSettings) -> None:
        from ..cluster.keeper import Keeper
        from ..cluster.node import ClusterNode
        from ..cluster.scheduling import SchedulingStore
        from ..cluster.waker import make_waker

        store = self.store
        keeper = self.keeper
        if not isinstance(keeper, Keeper) or not isinstance(store, SchedulingStore):
            raise InputError("this store cannot run a cluster (it has no Keeper)")
        if self.external_keeper is None and getattr(getattr(store, "url", None), "backend",
                                                    "sqlite") != "sqlite":
            # on the SQL Keeper: refused when the deployment is on etcd (two Keepers would
            # each elect a leader); a worker records it, a client only checks
            from ..cluster.scheduling import deployment_of

            await deployment_of(store, "sql", record=cluster.role == "worker")
        url = getattr(store, "url", None)
        waker = make_waker(url.url, url.backend, self.settings.table_prefix) if url else None
        from ..cluster.waker import Waker

        self._cluster = ClusterNode(self, keeper, store, waker or Waker(), cluster)
        trigger = self._cron_trigger()
        self.leader_hooks.append(
            lambda node: trigger.run(node.cron_wake if node.waker.pushes else None,
                                     node.settings.catchup_secs))
        await self._cluster.start()

    def _cron_trigger(self) -> CronTrigger:
        from ..cluster.cron import CronTrigger
        from ..cluster.keeper import Keeper
        from ..cluster.scheduling import SchedulingStore

        store = self.store
        if not isinstance(store, SchedulingStore) or not isinstance(store, Keeper):
            raise InputError("this store cannot keep schedules")
        now = store.db_now
        if self.clock.skips:
            clock = self.clock

            async def now() -> datetime:  # time is the clock's, not the database's
                return clock.now()

        return CronTrigger(self.store.list_dags, store.last_cron_tick, now,
                           self.fire_cron_tick, self.clock)

    async def close(self) -> None:
        """Stop: running attempts are left as recorded (a restart picks them up), staged state
        is flushed, the store is closed."""
        if self._closed:
            return
        self._closed = True
        self.definitions.close()
        if not self._started:
            await self.store.close()
            return
        await self._stop_background()
        cluster = self._cluster
        if cluster is not None:
            await cluster.stop_loops()  # no new work while the running work stops
        for runner in list(self._runners.values()):
            await runner.shutdown()
        rt = self._rt
        assert rt is not None
        # one budget for the writes still to land, however many steps wait for them
        flush_until = time.monotonic() + self.settings.close_flush_secs
        if rt.background:
            # finalizations in flight get a moment to land, then stop with the rest
            await asyncio.wait(list(rt.background), timeout=min(
                self.settings.cancel_grace_secs, self.settings.close_flush_secs))
            for t in list(rt.background):
                t.cancel()
        await rt.commits.close(max(0.5, flush_until - time.monotonic()))
        if rt.task_logs is not None:
            await rt.task_logs.close(max(0.5, min(5.0, flush_until - time.monotonic())))
        if self._waker is not None:
            await self._waker.close()
        if cluster is not None:
            # leaving the node list hands this node's instances to the leader's WatchDog now
            await cluster.close()
        rt.executor.shutdown()
        if self._tracing is not None:
            # flushes the spans still batched: off the loop, as it may wait on the network
            await asyncio.to_thread(self._tracing.close)
        await self._close_actions()
        if self.external_keeper is not None:
            await self.external_keeper.close()
        await self.store.close()

    async def _stop_background(self) -> None:
        """Wake the background loops so that they end between two queries, and cancel only
        what has not ended after a moment: a query cancelled in flight makes the PostgreSQL
        driver open a connection just to cancel it, and leaves noise behind at exit."""
        if not self._background:
            return
        self._stopping.set()
        self._wake_commands.set()
        if self._waker is not None:
            self._waker.poke()
        done, pending = await asyncio.wait(self._background, timeout=_STOP_GRACE_SECS)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.error("%s ended with an error: %r", t.get_name(), t.exception())
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _close_actions(self) -> None:
        for name in self.actions.names():
            closer = getattr(self.actions.get(name).action, "aclose", None)
            if closer is not None:
                try:
                    await closer()
                except Exception:  # closing is best effort
                    log.debug("closing action %s failed", name, exc_info=True)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _require_rt(self) -> Runtime:
        if self._closed:
            raise EngineClosedError("this engine is closed")
        if self._rt is None:
            raise EngineClosedError("the engine is not started: use 'async with' or start()")
        return self._rt

    def add_observer(self, observer: Any) -> None:
        """Watch the engine: see :class:`tideflow.engine.observer.EngineObserver`."""
        self._observers.add(observer)

    def on(self, event: str, fn: HookFn) -> None:
        """Register a lifecycle hook: before_run, success, fail, block, retry, continue,
        cancel."""
        self.hooks.on(event, fn)

    def _adopt_runner(self, inst: InstanceRecord, compiled: CompiledDag) -> InstanceRunner:
        runner = InstanceRunner(self._require_rt(), inst, compiled, self._runner_ended)
        self._runners[inst.id] = runner
        return runner

    async def _start_runner(self, inst: InstanceRecord, compiled: CompiledDag, *,
                            recovering: bool = False) -> InstanceRunner:
        """Build the instance's task tree and start what is ready (the runner reports the
        time to the parse metric)."""
        runner = self._adopt_runner(inst, compiled)
        await runner.start(recovering=recovering)
        return runner

    def _runner_ended(self, runner: InstanceRunner) -> None:
        if self._runners.get(runner.inst.id) is runner:
            del self._runners[runner.inst.id]
        if self._waiting.get(runner.inst.dag_id) and self._rt is not None:
            self._rt.spawn(self._admit_waiting(runner.inst.dag_id), "tideflow-admit")

    async def _recover(self) -> None:
        """Pick up every unfinished instance recorded in the store (single node: all of
        them) and carry on from where each stopped."""
        before: str | None = None
        found: list[InstanceRecord] = []
        while True:
            page = await self.store.list_instances(
                InstanceFilter(statuses=list(_UNFINISHED)), limit=500, before_id=before
            )
            found.extend(page)
            if len(page) < 500:
                break
            before = page[-1].id
        # this node drives the database: what an earlier process claimed and did not apply
        # is taken again
        await self.store.release_commands(None)
        picked: list[InstanceRecord] = []
        for brief in reversed(found):  # oldest first
            try:
                if brief.status == InstanceStatus.INIT:
                    compiled = await self._compiled_dag(brief.dag_id, brief.dag_version)
                    if self._over_limit(compiled.dag):
                        inst = await self.store.get_instance(brief.id, with_tasks=True)
                        inst.worker = self.node_id
                        self._waiting.setdefault(inst.dag_id, collections.deque()).append(
                            (inst, compiled))
                        continue
                picked.append(await self.store.get_instance(brief.id, with_tasks=True))
            except TideflowError as exc:
                log.error("could not pick up instance %s: %s", brief.id, exc)
        # the commands queued meanwhile apply before anything starts again
        await self._pick_up(picked, lambda _: self._apply_queued_soon(None, worker=None))
        if found:
            log.info("picked up %d unfinished instance(s)", len(found))

    async def _load_runner(self, instance_id: str, *, recovering: bool,
                           loaded: InstanceRecord | None = None) -> InstanceRunner:
        inst = loaded or await self.store.get_instance(instance_id, with_tasks=True)
        started = time.monotonic()
        try:
            compiled = await self._compiled_dag(inst.dag_id, inst.dag_version)
        except TideflowError:
            self._observers.emit("parsed", inst, time.monotonic() - started, False)
            raise
        inst.worker = self.node_id
        if recovering and inst.status.is_unfinished:
            return await self._start_runner(inst, compiled, recovering=True)
        return self._adopt_runner(inst, compiled)

    # -- reading ----------------------------------------------------------------------------------
    @staticmethod
    def _snapshot(inst: InstanceRecord) -> InstanceRecord:
        return inst.snapshot()

    async def check_ready(self) -> None:
        """Raise when this node cannot serve: the database unreachable (StoreError) or its
        schema not current (SchemaError)."""
        self._require_rt()
        await self.store.check_ready()

    async def list_nodes(self) -> list[NodeRecord]:
        """The nodes of the deployment with their role, leader flag, heartbeat and load."""
        self._require_rt()
        if self._cluster is not None:
            nodes = await self._cluster.keeper.list_nodes(
                unhealthy_secs=self._cluster.settings.unhealthy_secs
            )
            # a watcher that stopped holds no work: a CLI client killed before it could leave
            # the list is noise, while a dead worker is news (its runs move)
            return [n for n in nodes if n.alive or n.role != "watcher"]
        return [self._self_node()]

    def _self_node(self) -> NodeRecord:
        rt = self._require_rt()
        now = utcnow()
        return NodeRecord(
            node_id=self.node_id,
            incarnation=self._incarnation,
            role="worker",
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at or now,
            heartbeat_at=now,
            capacity=self.settings.concurrency,
            running=rt.executor.running,
            assigned=len(self._runners),
            labels=dict(self.settings.labels),
            actions=sorted(self.actions.names()),
            is_leader=True,
        )

    async def adopt(self, instance_id: str) -> InstanceRecord:
        """Drive an instance in this engine from now on (e.g. one whose process stopped, on a
        database no other node serves). It is recovered once: each attempt found in flight is
        recorded as interrupted and its task owed one new attempt; the commands queued for
        it apply before anything starts."""
        self._require_rt()
        if self._cluster is not None:
            raise InputError("a cluster node gets its instances from the leader, not adopt()")
        runner = self._runners.get(instance_id)
        if runner is None:
            if self._held(instance_id) is not None:
                raise InvalidStateError(f"instance {instance_id} waits here for its DAG's "
                                        "maxActiveRuns", state="init")
            inst = await self.store.get_instance(instance_id, with_tasks=True)
            # the process that drove it stopped: what it claimed and did not apply is taken
            # again, and applied before anything starts
            await self.store.release_commands([inst.id])
            picked = await self._pick_up(
                [inst], lambda _: self._apply_queued_soon([inst.id], worker=None))
            if not picked:
                return await self.get_instance(instance_id)
            runner = picked[0]
        return self._snapshot(runner.inst)

    def mutex(
        self,
        name: str,
        *,
        ttl_secs: float = 30.0,
        identity: str | None = None,
        auto_extend: bool = False,
    ) -> Mutex:
        """A distributed mutex on this engine's Keeper, its database or etcd (``async with
        engine.mutex("x"):``); ``identity`` makes it re-entrant across holders that share
        it."""
        from ..cluster.mutex import Mutex

        keeper = self.keeper
        if keeper is None:
            raise InputError("this store has no Keeper: mutexes need the SQL store or etcd")
        return Mutex(keeper, name, identity=identity, ttl_secs=ttl_secs,
                     auto_extend=auto_extend)

    @property
    def stats(self) -> dict[str, int]:
        """Counters for benchmarks and metrics."""
        rt = self._require_rt()
        return {
            "flushes": rt.commits.flushes,
            "rows_written": rt.commits.rows_written,
            "running_tasks": rt.executor.running,
            "abandoned_threads": rt.executor.abandoned_threads,
            "active_instances": len(self._runners),
        }
