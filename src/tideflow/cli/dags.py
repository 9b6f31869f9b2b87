"""``tideflow dag apply|list|show|delete|run``: DAGs on a server or in a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ..vars import MAX_PRIORITY, MIN_PRIORITY, parse_kv_pairs
from .clients import Client
from .common import EXIT_OK, TablePrefixOpt
from .connect import ActionsOpt, DbOpt, JsonOpt, ServerOpt, with_client
from .render import dag_detail, dags_table, instance_detail, out_console, print_json
from .watch import exit_code_of, follow

dag_app = typer.Typer(help="DAGs: apply, list, show, delete, run.", no_args_is_help=True)


@dag_app.command("apply")
def apply(
    file: Path = typer.Argument(..., help="The definition (YAML or JSON)."),
    server: str | None = ServerOpt,
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    actions: list[str] = ActionsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create or update a DAG from FILE (a new version, unless it holds the same definition
    as the newest one)."""
    dag = with_client(server, db, lambda c: c.apply_dag(file), actions=actions,
                      table_prefix=table_prefix)
    if as_json:
        print_json(dag)
    elif dag.get("unchanged"):
        typer.echo(f"DAG {dag['id']} unchanged (version {dag['version']})")
    else:
        typer.echo(f"applied DAG {dag['id']} version {dag['version']}")


@dag_app.command("list")
def list_dags(server: str | None = ServerOpt, db: str = DbOpt,
              table_prefix: str = TablePrefixOpt, as_json: bool = JsonOpt) -> None:
    """List the DAGs (the newest version of each)."""
    dags = with_client(server, db, lambda c: c.list_dags(), table_prefix=table_prefix)
    if as_json:
        print_json({"items": dags})
    else:
        dags_table(out_console(), dags)


@dag_app.command("show")
def show(
    dag_id: str,
    next_runs: int = typer.Option(5, "--next", min=0, max=100,
                                  help="How many next cron fire times to show (also in --json)."),
    server: str | None = ServerOpt,
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print a DAG's definition (YAML) and, if it has a cron, its next fire times."""
    dag = with_client(server, db, lambda c: c.get_dag(dag_id, fire_times=next_runs),
                      table_prefix=table_prefix)
    if as_json:
        print_json(dag)
    else:
        dag_detail(out_console(), dag)


def _schedule_command(paused: bool) -> None:
    verb = "pause" if paused else "resume"

    def command(
        dag_id: str,
        server: str | None = ServerOpt,
        db: str = DbOpt,
        table_prefix: str = TablePrefixOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        dag = with_client(server, db, lambda c: c.set_dag_paused(dag_id, paused),
                          table_prefix=table_prefix)
        if as_json:
            print_json(dag)
        else:
            typer.echo(f"schedule of DAG {dag['id']} {'paused' if paused else 'running'}")

    command.__doc__ = (
        "Pause a DAG's schedule: its cron fires no more (no new version; manual runs still "
        "work)." if paused else
        "Resume a DAG's schedule from the next tick (ticks missed while paused are not fired)."
    )
    dag_app.command(verb)(command)


_schedule_command(True)
_schedule_command(False)


@dag_app.command("delete")
def delete(
    dag_id: str,
    force: bool = typer.Option(False, "--force",
                               help="Even with unfinished instances (they may finish)."),
    server: str | None = ServerOpt,
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete a DAG (refused while it has unfinished instances, unless --force)."""
    with_client(server, db, lambda c: c.delete_dag(dag_id, force=force),
                table_prefix=table_prefix)
    if as_json:
        print_json({"id": dag_id, "deleted": True})
    else:
        typer.echo(f"deleted DAG {dag_id}")


@dag_app.command("run")
def run(
    dag_id: str,
    var: list[str] = typer.Option([], "--var", "-v", help="A run var, KEY=VALUE (repeatable)."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="A tag, KEY=VALUE (repeatable)."),
    selector: list[str] = typer.Option(
        [], "--selector", help="Placement: a worker label KEY=VALUE (repeatable)."
    ),
    priority: int = typer.Option(
        0, "--priority", min=MIN_PRIORITY, max=MAX_PRIORITY,
        help="Waiting runs go to the workers highest priority first (default 0).",
    ),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="A run submitted again with this key is not repeated."
    ),
    wait: float = typer.Option(0.0, "--wait", min=0,
                               help="Seconds to wait for it to end (0: don't)."),
    watch: bool = typer.Option(False, "--watch",
                               help="Follow its progress until it ends or waits for a person."),
    server: str | None = ServerOpt,
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    actions: list[str] = ActionsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Start an instance of DAG_ID (the workers run it). Exit 1 when an instance it waited
    for (--wait, --watch) failed or was canceled."""
    console = Console(stderr=True)

    async def go(c: Client) -> tuple[dict[str, Any], bool]:
        inst = await c.run_dag(
            dag_id,
            vars=parse_kv_pairs(var, what="--var"),
            tags=parse_kv_pairs(tag, what="--tag"),
            selector=parse_kv_pairs(selector, what="--selector"),
            priority=priority,
            idempotency_key=idempotency_key,
            wait=wait or None,
        )
        if watch:
            return await follow(c, inst["id"], console=console, quiet=as_json,
                                settled=True), True
        return inst, bool(wait)

    inst, waited = with_client(server, db, go, actions=actions, table_prefix=table_prefix)
    if as_json:
        print_json(inst)
    else:
        instance_detail(out_console(), inst)
    raise typer.Exit(exit_code_of(inst) if waited else EXIT_OK)
