"""Lifecycle hooks: callbacks the engine calls when an instance changes course.

A hook receives the instance (a snapshot without tasks) and may be sync or async. Hooks run
on the node that owns the instance at that moment, at least once; an exception in a hook is
logged and does not change the instance."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from ..store.records import InstanceRecord
    from .executor import Executor

log = logging.getLogger("tideflow.hooks")


class HookEvent(StrEnum):
    BEFORE_RUN = "before_run"
    SUCCESS = "success"
    FAIL = "fail"
    BLOCK = "block"
    RETRY = "retry"
    CONTINUE = "continue"
    CANCEL = "cancel"


HookFn = Callable[["InstanceRecord"], Any]


class Hooks:
    def __init__(self) -> None:
        self._hooks: dict[HookEvent, list[HookFn]] = {e: [] for e in HookEvent}

    def on(self, event: str, fn: HookFn) -> None:
        try:
            ev = HookEvent(event)
        except ValueError:
            raise InputError(
                f"unknown hook event '{event}'; known: {', '.join(e.value for e in HookEvent)}"
            ) from None
        self._hooks[ev].append(fn)

    def has(self, event: HookEvent) -> bool:
        return bool(self._hooks[event])

    async def fire(self, event: HookEvent, instance: InstanceRecord, executor: Executor) -> None:
        for fn in self._hooks[event]:
            try:
                await executor.call(fn, instance)
            except Exception:  # a hook must not break the engine
                log.exception("hook %s for instance %s failed", event.value, instance.id)
