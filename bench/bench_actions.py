"""The benchmark's actions for worker processes (``tideflow server --actions bench_actions``):
a no-op, so that what is measured is the engine and the database."""

from __future__ import annotations

from typing import Any

from tideflow import ActionContext, ActionRegistry


async def noop(ctx: ActionContext, params: Any) -> None:
    return None


def register_actions(registry: ActionRegistry) -> None:
    registry.add_function("noop", noop)
