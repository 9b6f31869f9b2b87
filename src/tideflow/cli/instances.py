"""``tideflow ins list|show|logs|retry|cancel|continue|reject|pause|resume|watch``: DAG
instances on a server or in a database.

With ``--db``, a command for an instance that another process drives is queued for it; that
process applies it within its poll interval."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import typer
from rich.console import Console

from ..errors import InputError, NotFoundError
from ..vars import parse_kv_pairs
from .clients import Client, InstanceQuery
from .common import TablePrefixOpt, err_console
from .connect import ActionsOpt, DbOpt, JsonOpt, ServerOpt, with_client
from .logs import logs
from .render import (
    instance_detail,
    instance_report,
    instances_table,
    out_console,
    print_json,
)
from .watch import exit_code_of, follow

ins_app = typer.Typer(help="DAG instances.", no_args_is_help=True)

TaskOpt = typer.Option([], "--task", help="Only this task (repeatable).")
WaitOpt = typer.Option(5.0, "--wait", min=0,
                       help="Seconds to wait for the effect (0: don't).")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} {value!r} is not an ISO 8601 time "
                         "(e.g. 2025-01-31T08:00:00Z)") from None


@ins_app.command("list")
def list_instances(
    dag: str | None = typer.Option(None, "--dag", help="Only this DAG's instances."),
    status: list[str] = typer.Option([], "--status", "-s",
                                     help="Only in this state (repeatable, or a comma list)."),
    tag: list[str] = typer.Option(
        [], "--tag", "-t", help="Only with this tag KEY=VALUE (repeatable, all must match)."
    ),
    created_after: str | None = typer.Option(None, "--created-after", help="ISO 8601 time."),
    created_before: str | None = typer.Option(None, "--created-before", help="ISO 8601 time."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Page size."),
    cursor: str | None = typer.Option(None, "--cursor", help="The next page, as printed."),
    server: str | None = ServerOpt,
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List instances, newest first."""

    async def go(c: Client) -> tuple[list[dict[str, Any]], str | None]:
        query = InstanceQuery(
            dag_id=dag,
            statuses=[s.strip() for v in status for s in v.split(",") if s.strip()],
            tags=parse_kv_pairs(tag, what="--tag"),
            created_after=_time(created_after, "--created-after"),
            created_before=_time(created_before, "--created-before"),
            limit=limit,
            cursor=cursor,
        )
        return await c.list_instances(query)

    items, next_cursor = with_client(server, db, go, table_prefix=table_prefix)
    if as_json:
        print_json({"items": items, "nextCursor": next_cursor})
        return
    instances_table(out_console(), items)
    if next_cursor:
        err_console.print(f"more: --cursor {next_cursor}", highlight=False)


@ins_app.command("show")
def show(instance_id: str, server: str | None = ServerOpt, db: str = DbOpt,
         table_prefix: str = TablePrefixOpt, as_json: bool = JsonOpt,
         lines: int = typer.Option(5, "--lines", "-n", min=0, max=1000,
                                   help="Last log lines shown per task (0: none).")) -> None:
    """Show one instance: its tasks, then each task's reason, output, attempts (with their
    reasons) and last log lines."""

    async def go(c: Client) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        inst = await c.get_instance(instance_id)
        tails: dict[str, list[dict[str, Any]]] = {}
        if not as_json and lines:
            for t in inst.get("tasks") or []:
                if t.get("attempts"):
                    tails[t["taskId"]] = await _tail(c, instance_id, t["taskId"], lines)
        return inst, tails

    inst, tails = with_client(server, db, go, table_prefix=table_prefix)
    if as_json:
        print_json(inst)
    else:
        instance_report(out_console(), inst, tails)


async def _tail(c: Client, instance_id: str, task_id: str, lines: int) -> list[dict[str, Any]]:
    try:
        page = await c.task_logs(instance_id, task_id, attempt=None, after=None, tail=lines)
    except NotFoundError:
        return []  # a server without task logs, or the task is gone: the rest still shows
    found: list[dict[str, Any]] = page["lines"]
    return found


@ins_app.command("watch")
def watch(
    instance_id: str,
    settled: bool = typer.Option(
        False, "--settled", help="Also stop when it waits for a person (blocked, paused)."
    ),
    server: str | None = ServerOpt,
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Follow an instance's progress live until it ends. Exit 1 if it failed or was
    canceled."""
    console = Console(stderr=True)
    inst = with_client(server, db, lambda c: follow(c, instance_id, console=console,
                                                     quiet=as_json, settled=settled),
                       table_prefix=table_prefix)
    if as_json:
        print_json(inst)
    else:
        instance_detail(out_console(), inst)
    raise typer.Exit(exit_code_of(inst))


def _run(kind: str, instance_id: str, task_ids: list[str], wait: float, server: str | None,
         db: str, table_prefix: str, actions: list[str], as_json: bool,
         decision: dict[str, Any] | None = None) -> None:
    inst = with_client(server, db, lambda c: c.command(kind, instance_id, task_ids or None,
                                                       wait or None, decision),
                       table_prefix=table_prefix, actions=actions)
    if as_json:
        print_json(inst)
    else:
        instance_detail(out_console(), inst)


ByOpt = typer.Option(None, "--by", help="Who decides (recorded; one of the approval's "
                     "approvers when it names them).")


@ins_app.command("continue")
def continue_(
    instance_id: str,
    task: list[str] = TaskOpt,
    input: list[str] = typer.Option(
        [], "--input", "-i", help="An approval's input KEY=VALUE (repeatable); checked against "
        "the inputs it declares."),
    by: str | None = ByOpt,
    wait: float = WaitOpt,
    server: str | None = ServerOpt,
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    actions: list[str] = ActionsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Continue an instance's blocked tasks (or only the given ones); an approval takes its
    decision with --input and --by."""
    inputs = parse_kv_pairs(input, what="--input") if input else None
    _run("continue", instance_id, task, wait, server, db, table_prefix, actions, as_json,
         {"inputs": inputs, "by": by})


@ins_app.command("reject")
def reject(
    instance_id: str,
    task: list[str] = TaskOpt,
    reason: str | None = typer.Option(None, "--reason", "-r",
                                      help="Why: the rejected task's reason."),
    by: str | None = ByOpt,
    wait: float = WaitOpt,
    server: str | None = ServerOpt,
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    actions: list[str] = ActionsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reject blocked approval tasks (the given ones, or all of the instance's): each fails
    with the reason given."""
    _run("reject", instance_id, task, wait, server, db, table_prefix, actions, as_json,
         {"reason": reason, "by": by})


def _command(kind: str, with_tasks: bool) -> Callable[..., None]:
    def run(instance_id: str, task_ids: list[str], wait: float, server: str | None, db: str,
            table_prefix: str, actions: list[str], as_json: bool) -> None:
        _run(kind, instance_id, task_ids, wait, server, db, table_prefix, actions, as_json)

    if with_tasks:
        def cmd(instance_id: str, task: list[str] = TaskOpt, wait: float = WaitOpt,
                server: str | None = ServerOpt, db: str = DbOpt,
                table_prefix: str = TablePrefixOpt, actions: list[str] = ActionsOpt,
                as_json: bool = JsonOpt) -> None:
            run(instance_id, task, wait, server, db, table_prefix, actions, as_json)

        cmd.__doc__ = f"{kind.capitalize()} an instance (or only the given tasks)."
        return cmd

    def whole(instance_id: str, wait: float = WaitOpt, server: str | None = ServerOpt,
              db: str = DbOpt, table_prefix: str = TablePrefixOpt,
              actions: list[str] = ActionsOpt, as_json: bool = JsonOpt) -> None:
        run(instance_id, [], wait, server, db, table_prefix, actions, as_json)

    whole.__doc__ = f"{kind.capitalize()} an instance."
    return whole


for _kind, _tasks in (("retry", True), ("cancel", True), ("pause", False), ("resume", False)):
    ins_app.command(_kind)(_command(_kind, _tasks))

ins_app.command("logs")(logs)
