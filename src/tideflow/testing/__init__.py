"""The test kit: unit-test actions, run DAGs in memory with fakes, and skip time.

    from tideflow.testing import Fake, make_context, run_dag

- :func:`make_context` builds the ``ctx`` an action is given, :func:`run_action` runs an
  action as one attempt of the engine would;
- :func:`run_dag` / :func:`memory_engine` run DAGs on an in-memory SQLite database, with
  chosen actions replaced by :class:`Fake` ones;
- :class:`SkippingClock` makes retry back-off, ``wait`` tasks, ``ctx.sleep`` and cron ticks
  take no real time (the engine's default clock in this kit);
- the pytest plugin (:mod:`tideflow.testing.pytest`, loaded by pytest on its own) gives the
  ``tideflow_kit`` and ``skipping_clock`` fixtures.
"""

from .clock import SkippingClock
from .context import TestContext, make_context, run_action
from .engine import Call, Fake, memory_engine, run_dag
from .kit import Kit

__all__ = [
    "Call",
    "Fake",
    "Kit",
    "SkippingClock",
    "TestContext",
    "make_context",
    "memory_engine",
    "run_action",
    "run_dag",
]
