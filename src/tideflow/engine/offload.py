"""Definition work off the event loop: reading, checking, compiling and encoding DAGs.

A node's event loop also beats its heartbeat and renews its lease. Reading a large definition
(a 20,000-task one takes seconds of Python) on it would stall both, and the node would lose its
lease to a request body. So that work runs here, in one thread of its own: definitions are
read one at a time (the work is CPU-bound, a second thread would only share the same
interpreter lock), each within the size and time budget of
:class:`~tideflow.definition.loader.LoadLimits`.

Small definitions skip the thread hop (:func:`is_large`): they cost less than the hop does.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..definition.model import DagDef

T = TypeVar("T")

#: a DAG with more tasks than this is compiled, encoded and decoded in the thread
LARGE_DAG_TASKS = 200


def is_large(dag: DagDef) -> bool:
    """Whether handling ``dag`` is worth moving off the event loop."""
    return len(dag.tasks) > LARGE_DAG_TASKS


class DefinitionWork:
    """The thread that reads and checks definitions for one engine."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in the definition thread; the caller's loop stays free meanwhile."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tideflow-dags")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def run_if(self, large: bool, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in the thread when ``large``, else right here."""
        return await self.run(fn, *args) if large else fn(*args)

    def close(self) -> None:
        if self._pool is not None:
            # work in flight ends within its time budget; nothing waits for it
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
