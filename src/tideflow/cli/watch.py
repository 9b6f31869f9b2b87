"""Following one instance live, whichever client reads it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from rich.console import Console
from rich.live import Live

from ..serialize import instance_from_json
from .clients import Client
from .common import EXIT_FAILED, EXIT_OK, err_console
from .progress import ProgressView

POLL_SECS = 0.3
_FINAL = frozenset({"success", "failed", "canceled"})
_WAITING = frozenset({"blocked", "paused"})


def exit_code_of(inst: dict[str, Any]) -> int:
    """1 when the instance failed or was canceled, else 0."""
    return EXIT_FAILED if inst["status"] in ("failed", "canceled") else EXIT_OK


async def follow(
    client: Client, instance_id: str, *, console: Console, quiet: bool, settled: bool
) -> dict[str, Any]:
    """Show the instance's progress until it ends — or, with ``settled``, until it waits for
    a person. While it waits (and ``settled`` is off), say once how to go on."""
    inst = await client.get_instance(instance_id)
    view = ProgressView(console, total=len(inst["tasks"]))
    told = False
    live = Live(view.renderable(), console=console, refresh_per_second=8, transient=True)
    with live if not quiet else contextlib.nullcontext(live):
        while True:
            view.update(instance_from_json(inst))
            live.update(view.renderable())
            status = inst["status"]
            if status in _FINAL or (settled and status in _WAITING):
                return inst
            if status in _WAITING and not told:
                told = True
                blocked = [t["taskId"] for t in inst["tasks"] if t["status"] == "blocked"]
                verb = "continue" if blocked else "resume"
                what = f"blocked at {', '.join(blocked)}" if blocked else status
                err_console.print(f"instance {instance_id} is {what}; waiting. To go on, run:",
                                  soft_wrap=True)
                err_console.print(f"  tideflow ins {verb} {instance_id}", soft_wrap=True,
                                  highlight=False)
            elif status not in _WAITING:
                told = False
            await asyncio.sleep(POLL_SECS)
            inst = await client.get_instance(instance_id)
