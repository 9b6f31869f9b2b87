"""A sync facade over the async Engine, for callers without an event loop.

The engine runs on its own event loop in a background thread; each method submits the
coroutine there and waits for its result."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from .engine import Engine

T = TypeVar("T")


class SyncEngine:
    """``with SyncEngine(Engine.from_url(...)) as engine: engine.run_dag(...)``"""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tideflow-loop", daemon=True
        )
        self._thread.start()
        self._call(engine.start())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        attr = getattr(self.engine, name)
        if inspect.isasyncgenfunction(attr):
            # follow_task_logs: a plain iterator over what the async one yields
            def iterate(*args: Any, **kwargs: Any) -> Iterator[Any]:
                agen = attr(*args, **kwargs)
                try:
                    while True:
                        try:
                            yield self._call(_next(agen))
                        except StopAsyncIteration:
                            return
                finally:
                    self._call(agen.aclose())

            return iterate
        if not callable(attr) or not asyncio.iscoroutinefunction(attr):
            return attr  # type: ignore[no-any-return]

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(attr(*args, **kwargs))

        return call

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self.engine.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _next(agen: AsyncIterator[T]) -> T:
    return await anext(agen)
