"""Actions for the cluster tests: each execution is appended to a log file, one line per
attempt (node, instance, task, attempt), so the tests can check for lost or doubled work."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from tideflow import ActionContext, ActionRegistry

LOG = os.environ.get("TIDEFLOW_TEST_EXEC_LOG", "/tmp/tideflow-exec.log")
NODE = os.environ.get("TIDEFLOW_TEST_NODE", "?")


def _record(ctx: ActionContext) -> None:
    line = f"{NODE} {ctx.instance_id} {ctx.task_id} {ctx.attempt}\n".encode()
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write: lines from many processes do not interleave
    finally:
        os.close(fd)


async def noop(ctx: ActionContext, params: Any) -> None:
    _record(ctx)
    delay = float(params.get("sleep", 0)) if isinstance(params, dict) else 0.0
    if delay:
        await asyncio.sleep(delay)


async def fail_while(ctx: ActionContext, params: Any) -> None:
    """Fails while the file named by ``path`` exists (the test removes it to let it pass)."""
    _record(ctx)
    if os.path.exists(params["path"]):
        raise RuntimeError(f"{params['path']} exists")


async def fragile(ctx: ActionContext, params: Any) -> None:
    """At most one at a time across the cluster: logs its start and end times."""
    path = params["log"]
    with open(path, "a") as f:
        f.write(f"start {time.time():.6f} {NODE}\n")
    await asyncio.sleep(0.15)
    with open(path, "a") as f:
        f.write(f"end {time.time():.6f} {NODE}\n")


def register_actions(registry: ActionRegistry) -> None:
    registry.add_function("fragile", fragile, max_concurrency=1)
    registry.add_function("noop", noop)
    registry.add_function("fail_while", fail_while)
