"""``tideflow run FILE``: register a DAG on the embedded database and drive one instance to
its end, with live progress."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import signal
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live

from ..definition.loader import load_dag_file
from ..definition.model import DagDef
from ..engine.engine import Engine
from ..engine.settings import client_node_id
from ..logformat import set_log_node, use_log_format
from ..serialize import instance_to_json
from ..states import InstanceStatus
from ..store.records import InstanceRecord
from ..vars import parse_kv_pairs, resolve_run_vars, validate_tags
from .common import (
    DEFAULT_TABLE_PREFIX,
    EXIT_BLOCKED,
    EXIT_FAILED,
    EXIT_OK,
    DbOpt,
    LogFormatOpt,
    OtelOpt,
    TablePrefixOpt,
    TaskLogFlushOpt,
    TaskLogMaxOpt,
    TaskLogsOpt,
    build_engine,
    cli_errors,
    notice,
    task_log_settings,
)
from .connect import run_to_end
from .progress import ProgressView, summary
from .render import out_console

#: after Ctrl-C, how long `run` waits for the canceled instance's state to be written, at
#: the cancel and again at close
INTERRUPTED_FLUSH_SECS = 1.5


def run_command(
    file: Path = typer.Argument(..., help="The DAG definition (YAML or JSON)."),
    var: list[str] = typer.Option([], "--var", "-v", help="A run var, KEY=VALUE (repeatable)."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="A tag, KEY=VALUE (repeatable)."),
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    actions: list[str] = typer.Option(
        [], "--actions", "-a", help="A module whose actions to register (repeatable)."
    ),
    python_allow: list[str] = typer.Option(
        [], "--python-allow", help="A module prefix the python action may call (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final instance as JSON."),
    no_wait_blocked: bool = typer.Option(
        False, "--no-wait-blocked", help="Exit with code 3 when the instance waits for a person."
    ),
    log_format: str = LogFormatOpt,
    otel: bool | None = OtelOpt,
    task_logs: bool = TaskLogsOpt,
    task_log_max_bytes: int = TaskLogMaxOpt,
    task_log_flush_secs: float = TaskLogFlushOpt,
) -> None:
    """Register FILE and run one instance of it to its end.

    Exit codes: 0 success, 1 failed or canceled, 2 bad definition or arguments,
    3 blocked (with --no-wait-blocked)."""
    with cli_errors():
        use_log_format(log_format)
        run_vars = parse_kv_pairs(var, what="--var")
        run_tags = parse_kv_pairs(tag, what="--tag")
        engine = build_engine(db, actions=actions, python_allow=python_allow,
                              table_prefix=table_prefix, node_id=client_node_id(), otel=otel,
                              **task_log_settings(task_logs, task_log_max_bytes,
                                                  task_log_flush_secs))
        set_log_node(engine.node_id)
        # the run uses this process's actions: an unknown one is listed with every other
        # problem of the file, not found only after the others are fixed
        dag = load_dag_file(file, known_actions=engine.actions.names())
        # bad run input must be refused before the DAG is registered: a refusal writes nothing
        resolved = resolve_run_vars(dag, run_vars)
        validate_tags(run_tags)
        engine.limits.check_vars(resolved)
        code = run_to_end(
            _drive(engine, dag=dag, db=_db_args(db, table_prefix), run_vars=run_vars,
                   run_tags=run_tags, as_json=as_json, no_wait_blocked=no_wait_blocked,
                   dag_id=dag.id)
        )
    raise typer.Exit(code)


def _db_args(db: str, table_prefix: str) -> str:
    """The options that point another command at the same tables, as a shell would take
    them."""
    args = f"--db {shlex.quote(db)}"
    if table_prefix != DEFAULT_TABLE_PREFIX:
        args += f" --table-prefix {shlex.quote(table_prefix)}"
    return args


async def _drive(
    engine: Engine,
    *,
    dag: DagDef,
    db: str,
    run_vars: dict[str, str],
    run_tags: dict[str, str],
    as_json: bool,
    no_wait_blocked: bool,
    dag_id: str,
) -> int:
    # with --json, stdout holds only the JSON: progress and messages go to stderr
    console = Console(stderr=True) if as_json else out_console()
    # from here on Ctrl-C / SIGTERM cancel the run instead of killing the process mid-write
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
        loop.add_signal_handler(signal.SIGTERM, interrupted.set)
    except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
        pass
    async with engine:
        record = await engine.register_loaded(lambda: dag)  # read and checked above
        inst = await engine.run_dag(record.id, run_vars, run_tags)
        secrets = record.definition.secret_vars()
        final = await _follow(engine, inst, console, db=db, quiet=as_json,
                              no_wait_blocked=no_wait_blocked, interrupted=interrupted)
        if as_json:
            sys.stdout.write(json.dumps(instance_to_json(final, secrets=secrets), indent=2))
            sys.stdout.write("\n")
        else:
            summary(console, final)
    if final.status == InstanceStatus.SUCCESS:
        return EXIT_OK
    if final.status in (InstanceStatus.BLOCKED, InstanceStatus.PAUSED):
        return EXIT_BLOCKED
    return EXIT_FAILED


async def _follow(
    engine: Engine,
    inst: InstanceRecord,
    console: Console,
    *,
    db: str,
    quiet: bool,
    no_wait_blocked: bool,
    interrupted: asyncio.Event,
) -> InstanceRecord:
    view = ProgressView(console, total=len(inst.tasks))
    told_blocked = False
    live = Live(view.renderable(), console=console, refresh_per_second=8, transient=True)
    with live if not quiet else contextlib.nullcontext(live):
        canceled_at: float | None = None
        while True:
            inst = await engine.wait_for(inst.id, timeout=0.25, settled=False)
            view.update(inst)
            live.update(view.renderable())
            if canceled_at is not None and inst.status.is_unfinished and (
                    interrupted.is_set()
                    or time.monotonic() - canceled_at > 2 * INTERRUPTED_FLUSH_SECS):
                # a task's result still waits to be written (the database fails writes):
                # the cancel cannot finish now; what is unwritten is left for recovery
                notice("interrupted: the instance's canceled state could not be written yet; "
                       "exiting")
                return inst
            if interrupted.is_set() and inst.status.is_unfinished:
                canceled_at = time.monotonic()
                notice("interrupted: canceling the instance")
                # the user wants out: while the database fails writes (down, disk full),
                # wait a moment for them, not the half minute a node waits at close
                engine.settings.close_flush_secs = min(engine.settings.close_flush_secs,
                                                       INTERRUPTED_FLUSH_SECS)
                inst = await engine.cancel(inst.id, wait=INTERRUPTED_FLUSH_SECS)
                interrupted.clear()
                continue
            if inst.status.is_final:
                return inst
            if inst.status in (InstanceStatus.BLOCKED, InstanceStatus.PAUSED):
                if no_wait_blocked:
                    return inst
                if not told_blocked:
                    told_blocked = True
                    blocked = [t.task_id for t in inst.tasks if t.status.value == "blocked"]
                    what = (f"blocked at {', '.join(blocked)}" if blocked
                            else inst.status.value)
                    verb = "continue" if blocked else "resume"
                    notice(f"instance {inst.id} is {what}; waiting. To go on, run:\n"
                           f"  tideflow ins {verb} {inst.id} {db}")
            else:
                told_blocked = False
