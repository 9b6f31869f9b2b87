"""An action's context built for a unit test, and running an action the way the engine does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..actions.base import ActionContext, ActionSpec, ShareData
from ..actions.tasklog import TaskLogger
from ..clock import Clock
from ..limits import Limits


@dataclass
class TestContext(ActionContext):
    """An :class:`~tideflow.ActionContext` that keeps what the action did: its trace lines,
    its log lines, the share-data keys it wrote, and the params it is meant to run with."""

    __test__ = False  # not a pytest test class

    #: the task's params as rendered (what :func:`run_action` runs the action with)
    params: Any = None
    #: every ``ctx.trace(...)`` line, in order
    traces: list[str] = field(default_factory=list)
    #: the share-data keys written, in order (a key written twice shows twice)
    written: list[str] = field(default_factory=list)
    #: every ``ctx.log`` line as (level name, text), in order
    logs: list[tuple[str, str]] = field(default_factory=list)

    def cancel(self) -> None:
        """Signal cancellation, as a cancel command or a timeout would."""
        self.cancelled.set()


def make_context(
    *,
    vars: Mapping[str, Any] | None = None,
    share_data: Mapping[str, str] | None = None,
    attempt: int = 1,
    params: Any = None,
    dag_id: str = "test-dag",
    instance_id: str = "test-instance",
    task_id: str = "test-task",
    continued: bool = False,
    decision: Mapping[str, Any] | None = None,
    timeout_secs: float | None = None,
    clock: Clock | None = None,
    limits: Limits | None = None,
) -> TestContext:
    """A context for calling an action's ``run(ctx, params)`` in a unit test.

    ``share_data`` is copied: read what the action wrote from ``ctx.share_data``.
    ``timeout_secs`` sets ``ctx.deadline`` that far from now; ``clock`` is what ``ctx.sleep``
    sleeps on (a :class:`~tideflow.testing.SkippingClock` makes it instant)."""
    traces: list[str] = []
    written: list[str] = []
    logs: list[tuple[str, str]] = []
    limits = limits or Limits()
    return TestContext(
        dag_id=dag_id,
        instance_id=instance_id,
        task_id=task_id,
        attempt=attempt,
        vars=dict(vars or {}),
        share_data=ShareData(dict(share_data or {}), written.append, limits),
        cancelled=asyncio.Event(),
        deadline=time.monotonic() + timeout_secs if timeout_secs is not None else None,
        continued=continued,
        limits=limits,
        decision=dict(decision) if decision is not None else None,
        clock=clock or Clock(),
        log=TaskLogger(lambda stream, text, level: logs.append((level or "", text))),
        _trace=lambda message, flush: traces.append(message),
        params=params,
        traces=traces,
        written=written,
        logs=logs,
    )


async def run_action(action: Any, ctx: TestContext | None = None, params: Any = None) -> Any:
    """Run ``action`` as one attempt of the engine would: its params (``params``, else
    ``ctx.params``) validated into its params model, weakly typed; then ``retry_before``
    (from the second attempt on), ``run_before``, ``run`` and ``run_after``. Returns what
    ``run`` returned; what it raises propagates."""
    spec = ActionSpec(action)
    ctx = ctx if ctx is not None else make_context(params=params)
    parsed = spec.parse_params(params if params is not None else ctx.params)

    async def call(fn: Any) -> Any:
        if ActionSpec.is_async(fn):
            return await fn(ctx, parsed)
        return await asyncio.to_thread(fn, ctx, parsed)

    if ctx.attempt > 1 and spec.retry_before is not None:
        await call(spec.retry_before)
    if spec.run_before is not None:
        await call(spec.run_before)
    result = await call(spec.run)
    if spec.run_after is not None:
        await call(spec.run_after)
    return result
