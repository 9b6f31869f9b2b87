"""The kit the pytest fixture hands a test: one skipping clock, shared by what it builds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ..engine.dags import DagSource
from ..engine.engine import Engine
from ..engine.settings import EngineSettings
from ..store.records import InstanceRecord
from .clock import SkippingClock
from .context import TestContext, make_context, run_action
from .engine import FakeLike, Registrar, memory_engine, run_dag


class Kit:
    """:func:`make_context`, :func:`run_action`, :func:`memory_engine` and :func:`run_dag`,
    all on the one :class:`SkippingClock` of the test (``kit.clock``), so that a test can see
    how much virtual time passed (``kit.clock.skipped``)."""

    def __init__(self, clock: SkippingClock | None = None) -> None:
        self.clock = clock or SkippingClock()

    def make_context(self, **kwargs: Any) -> TestContext:
        kwargs.setdefault("clock", self.clock)
        return make_context(**kwargs)

    async def run_action(self, action: Any, ctx: TestContext | None = None,
                         params: Any = None) -> Any:
        return await run_action(action, ctx if ctx is not None else self.make_context(),
                                params)

    @asynccontextmanager
    async def engine(
        self,
        *,
        actions: Registrar | Iterable[Any] | None = None,
        fakes: Mapping[str, FakeLike] | None = None,
        settings: EngineSettings | None = None,
        dags: Iterable[DagSource] = (),
    ) -> AsyncIterator[Engine]:
        async with memory_engine(actions=actions, fakes=fakes, clock=self.clock,
                                 settings=settings, dags=dags) as engine:
            yield engine

    async def run_dag(
        self,
        dag: DagSource,
        *,
        vars: Mapping[str, Any] | None = None,
        fakes: Mapping[str, FakeLike] | None = None,
        actions: Registrar | Iterable[Any] | None = None,
        settings: EngineSettings | None = None,
        timeout: float = 30.0,
    ) -> InstanceRecord:
        return await run_dag(dag, vars=vars, fakes=fakes, actions=actions, clock=self.clock,
                             settings=settings, timeout=timeout)
