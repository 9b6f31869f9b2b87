"""What the parts of a running engine share: settings, store, group commit, executor,
actions and hooks. One per engine object; passed down, never global."""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..actions.base import ActionRegistry
from ..clock import Clock
from ..limits import Limits
from ..store.base import Store
from .executor import Executor
from .group_commit import GroupCommit
from .hooks import HookEvent, Hooks
from .observer import Observers
from .settings import EngineSettings
from .tasklogs import TaskLogSink

if TYPE_CHECKING:
    from ..cluster.keeper import Keeper
    from ..cluster.mutex import Mutex
    from ..store.records import InstanceRecord
    from .runner import InstanceRunner


@dataclass
class Runtime:
    settings: EngineSettings
    node_id: str
    store: Store
    #: where leases live (the store, or etcd); None: nowhere, no cluster-wide limits
    keeper: Keeper | None
    commits: GroupCommit
    executor: Executor
    actions: ActionRegistry
    hooks: Hooks
    limits: Limits = field(default_factory=Limits)
    observers: Observers = field(default_factory=Observers)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    #: what back-off, waits and actions' own sleeps sleep on (a test's may skip time)
    clock: Clock = field(default_factory=Clock)
    #: where attempts' logs go (built by the engine; a disabled one keeps nothing)
    task_logs: TaskLogSink | None = None

    async def action_slot(self, name: str, limit: int, holder: str,
                          cancelled: asyncio.Event) -> Mutex | None:
        """One of the ``limit`` cluster-wide slots of action ``name`` (a lease each), waiting
        until one is free; None when the store keeps no leases (no limit then)."""
        from ..cluster.mutex import Mutex

        if self.keeper is None:
            return None
        delay = 0.05
        while True:
            for i in range(limit):
                # a lease, auto-extended while held, so a dead holder frees it after its TTL
                slot = Mutex(self.keeper, f"action:{name}:{i}", identity=holder, ttl_secs=30,
                             auto_extend=True)
                if await slot.try_acquire():
                    return slot
            if cancelled.is_set():
                raise asyncio.CancelledError
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` in the background, tracked so that closing the engine can end it."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def fire(self, event: HookEvent, runner: InstanceRunner,
                   state: InstanceRecord | None = None) -> None:
        """Run the hooks of ``event`` on the instance (or on ``state``, the instance as it is
        about to be committed)."""
        if self.hooks.has(event):
            # hooks get a copy: what they do to it cannot reach the engine's state
            inst = copy.copy(state if state is not None else runner.inst)
            inst.tasks = []
            inst.vars = dict(inst.vars)
            inst.share_data = dict(inst.share_data)
            inst.tags = dict(inst.tags)
            await self.hooks.fire(event, inst, self.executor)
