"""Observers: how metrics and other adapters watch an engine without the core importing them.

An observer implements any of these methods (all optional, all sync and quick: they run on
the event loop). The engine calls them as things happen; an exception in an observer is logged
and ignored."""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..store.records import InstanceRecord, TaskRecord

log = logging.getLogger("tideflow.engine")


class EngineObserver(Protocol):
    def task_started(self, inst: InstanceRecord, task: TaskRecord, delay_secs: float) -> None:
        """An attempt started; ``delay_secs`` from the task being ready to its start."""

    def task_finished(self, inst: InstanceRecord, task: TaskRecord, duration_secs: float) -> None:
        """An attempt ended (``task.status`` says how)."""

    def instance_changed(self, inst: InstanceRecord, old_status: str | None) -> None:
        """An instance was created (``old_status`` None) or changed status."""

    def dispatched(self, count: int, elapsed_secs: float, ok: bool) -> None:
        """Instances were assigned to workers (or parsed into a task tree, on one node)."""

    def parsed(self, inst: InstanceRecord, elapsed_secs: float, ok: bool) -> None:
        """An instance's task tree was built."""

    def leadership_changed(self, is_leader: bool) -> None: ...

    def attempt_scope(self, inst: InstanceRecord, task: TaskRecord
                      ) -> AbstractAsyncContextManager[None] | None:
        """What the action's calls of this attempt run inside (the attempt's trace span made
        current), or None."""


class Observers:
    """The observers of one engine, called safely."""

    def __init__(self) -> None:
        self._items: list[Any] = []

    def add(self, observer: Any) -> None:
        self._items.append(observer)

    def remove(self, observer: Any) -> None:
        self._items.remove(observer)

    def __bool__(self) -> bool:
        return bool(self._items)

    def emit(self, method: str, *args: Any) -> None:
        for obs in self._items:
            fn = getattr(obs, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:  # an observer must not break the engine
                log.exception("observer %r failed in %s", obs, method)

    def attempt_scope(self, inst: InstanceRecord, task: TaskRecord
                      ) -> AbstractAsyncContextManager[Any]:
        """The observers' scopes of one attempt, entered together."""
        scopes = []
        for obs in self._items:
            fn = getattr(obs, "attempt_scope", None)
            if fn is None:
                continue
            try:
                scope = fn(inst, task)
            except Exception:
                log.exception("observer %r failed in attempt_scope", obs)
                continue
            if scope is not None:
                scopes.append(scope)
        if not scopes:
            return contextlib.nullcontext()
        return _Scopes(scopes)


class _Scopes(AsyncExitStack):
    def __init__(self, scopes: list[AbstractAsyncContextManager[None]]) -> None:
        super().__init__()
        self._scopes = scopes

    async def __aenter__(self) -> _Scopes:
        await super().__aenter__()
        for scope in self._scopes:
            await self.enter_async_context(scope)
        return self
