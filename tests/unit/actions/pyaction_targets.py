"""Functions the python action tests call."""

from __future__ import annotations

import asyncio
import threading
from os import getcwd  # noqa: F401 - re-exported on purpose: calling it must be refused
from typing import Any

from tideflow.actions.base import ActionContext


def add(a: int, b: int) -> int:
    return a + b


def greet(name: str) -> str:
    return f"hello {name}"


def nothing() -> None:
    return None


def with_ctx(ctx: ActionContext, key: str) -> dict[str, Any]:
    ctx.trace("inside with_ctx")
    ctx.share_data[key] = "written by the function"
    return {"task": ctx.task_id, "vars": dict(ctx.vars)}


async def async_mul(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a * b


def thread_name() -> str:
    return threading.current_thread().name


def boom() -> None:
    raise RuntimeError("kaboom")


def blocks(ctx: ActionContext) -> None:
    ctx.block("needs a second look")


def unserialisable() -> object:
    return object()


NOT_CALLABLE = 42
