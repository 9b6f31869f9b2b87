"""``tideflow ins ...``: look at and steer instances straight in the database.

Commands for an instance driven by another process are queued for it; that process applies
them within its poll interval."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from rich.console import Console

from ..engine.engine import Engine
from ..serialize import instance_to_json
from ..store.records import InstanceRecord
from .common import DEFAULT_DB, EXIT_FAILED, EXIT_OK, build_engine, cli_errors
from .progress import summary

ins_app = typer.Typer(help="DAG instances.", no_args_is_help=True)

DbOpt = typer.Option(DEFAULT_DB, "--db", envvar="TIDEFLOW_DB", help="Database URL.")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")
TaskOpt = typer.Option([], "--task", help="Only this task (repeatable).")
WaitOpt = typer.Option(5.0, "--wait", help="Seconds to wait for the effect (0: don't).")


def _with_engine(db: str, fn: Callable[[Engine], Awaitable[Any]]) -> Any:
    async def _go() -> Any:
        async with build_engine(db, recover=False) as engine:
            return await fn(engine)

    with cli_errors():
        return asyncio.run(_go())


def _print(inst: InstanceRecord, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(instance_to_json(inst), indent=2))
    else:
        summary(Console(), inst)


@ins_app.command("show")
def show(instance_id: str, db: str = DbOpt, as_json: bool = JsonOpt) -> None:
    """Show one instance with its tasks."""
    inst = _with_engine(db, lambda e: e.get_instance(instance_id))
    _print(inst, as_json)


def _command(kind: str) -> Callable[..., None]:
    def cmd(
        instance_id: str,
        task: list[str] = TaskOpt,
        db: str = DbOpt,
        wait: float = WaitOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        async def _do(engine: Engine) -> InstanceRecord:
            ids = task or None
            if kind in ("pause", "resume"):
                fn = getattr(engine, kind)
                result: InstanceRecord = await fn(instance_id, wait=wait or None)
            else:
                verb = getattr(engine, "continue_" if kind == "continue" else kind)
                result = await verb(instance_id, ids, wait=wait or None)
            return result

        inst = _with_engine(db, _do)
        _print(inst, as_json)
        raise typer.Exit(EXIT_OK if inst is not None else EXIT_FAILED)

    cmd.__doc__ = f"{kind.capitalize()} an instance (or the given tasks)."
    return cmd


for _kind in ("retry", "cancel", "continue", "pause", "resume"):
    ins_app.command(_kind)(_command(_kind))
