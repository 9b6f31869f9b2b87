"""What the CLI commands share: exit codes, error printing, building an engine, loading
action modules.

Exit codes of the client verbs (``tideflow dag|ins|node``), for scripts:

====  =========================================================================
0     done (and an instance it waited for ended in success, or waits for a person)
1     the operation failed, or the instance it waited for failed or was canceled
2     bad arguments, input or definition (HTTP 400/413/415/422)
3     not found: no such DAG, instance or task (HTTP 404)
4     conflict: the command does not fit the current state (HTTP 409)
5     the server or database cannot be reached, or refused the token (401/403)
====  =========================================================================

``tideflow run`` keeps its own: 0 success, 1 failed or canceled, 2 bad definition or
arguments, 3 waits for a person (with ``--no-wait-blocked``)."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from ..actions.base import ActionRegistry
from ..engine.engine import Engine
from ..engine.settings import EngineSettings
from ..errors import (
    ConflictError,
    DefinitionError,
    InputError,
    NotFoundError,
    StoreError,
    TideflowError,
)
from ..logformat import logs_as_json

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: ``tideflow run`` only: the instance waits for a person
EXIT_BLOCKED = 3
#: client verbs: no such DAG, instance or task
EXIT_NOT_FOUND = 3
#: client verbs: the command does not fit the current state
EXIT_CONFLICT = 4
#: client verbs: the server or database cannot be reached, or refused the token
EXIT_UNAVAILABLE = 5

DEFAULT_DB = "sqlite:///tideflow.db"
DEFAULT_TABLE_PREFIX = "tf_"

#: every command that opens the database takes these two
DbOpt = typer.Option(DEFAULT_DB, "--db", envvar="TIDEFLOW_DB", help="Database URL.")
LogFormatOpt = typer.Option(
    "text", "--log-format", envvar="TIDEFLOW_LOG_FORMAT",
    help="How log lines on stderr look: text, or json (one JSON object a line, with the node, "
    "instance, DAG, task and attempt as keys, for log shippers).",
)

#: where a cluster's membership, leader election and mutexes live, when not in the database
KEEPER_ENV = "TIDEFLOW_KEEPER"
KeeperOpt = typer.Option(
    None, "--keeper", envvar=KEEPER_ENV,
    help="Keep membership, leader election and mutexes in etcd (etcd://host:2379, several "
    "endpoints separated by commas, an optional /path) rather than the database, which must "
    "then be MariaDB, MySQL or PostgreSQL.",
)
OtelOpt = typer.Option(
    None, "--otel/--no-otel",
    help="OpenTelemetry traces of the runs, sent with OTLP over HTTP (needs tideflow[otel]) "
    "[default: on when OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT is set].",
    show_default=False,
)
#: task logs (docs/logs.md): kept or not, each attempt's cap, how often lines are written
TaskLogsOpt = typer.Option(True, "--task-logs/--no-task-logs",
                           help="Keep each attempt's log (shell output, ctx.log lines, the "
                           "engine's own lines) in the database.")
TaskLogMaxOpt = typer.Option(
    10 * 1024 * 1024, "--task-log-max-bytes", min=1024, max=2**40,
    help="The most one attempt's log keeps, in bytes (a marker line says where it was cut).")
TaskLogFlushOpt = typer.Option(
    0.2, "--task-log-flush-secs", min=0.01, max=60.0,
    help="How often collected log lines are written, in seconds.")


def task_log_settings(keep: bool, max_bytes: int, flush_secs: float) -> dict[str, Any]:
    """The engine settings of the task-log options."""
    return {"task_logs": keep, "task_log_max_bytes": max_bytes,
            "task_log_flush_secs": flush_secs}


TablePrefixOpt = typer.Option(
    DEFAULT_TABLE_PREFIX, "--table-prefix", envvar="TIDEFLOW_TABLE_PREFIX",
    help="Prefix of the table names (several deployments can share one database).",
)

#: messages on stderr are not wrapped either: a long id or path stays on one line
err_console = Console(stderr=True, soft_wrap=True)


def notice(text: str, level: int = logging.WARNING) -> None:
    """Tell the person running the command ``text`` on stderr: as a log line (at ``level``,
    logger ``tideflow.cli``) when the log format is JSON, so that every line stays JSON."""
    if logs_as_json():
        logging.getLogger("tideflow.cli").log(level, "%s", text)
    else:
        err_console.print(text, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    # the message is plain text: "[mysql]" in it must not be read as markup
    err_console.print(Text("error: ", style="bold red") + Text(message), highlight=False,
                      soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn tideflow's errors into a message on stderr and the documented exit code."""
    try:
        yield
    except (DefinitionError, InputError) as exc:
        fail(exc.message, EXIT_BAD_INPUT)
    except TideflowError as exc:
        fail(exc.message, EXIT_FAILED)


@contextmanager
def client_errors() -> Iterator[None]:
    """Like :func:`cli_errors`, with the client verbs' finer exit codes."""
    from .clients.base import UnavailableError

    try:
        yield
    except (DefinitionError, InputError) as exc:
        fail(exc.message, EXIT_BAD_INPUT)
    except NotFoundError as exc:
        fail(exc.message, EXIT_NOT_FOUND)
    except ConflictError as exc:
        fail(exc.message, EXIT_CONFLICT)
    except (UnavailableError, StoreError) as exc:
        fail(exc.message, EXIT_UNAVAILABLE)
    except TideflowError as exc:
        fail(exc.message, EXIT_FAILED)


def load_action_modules(modules: Sequence[str], registry: ActionRegistry) -> None:
    """Import each module and register its actions: a ``register_actions(registry)``
    function, or an ``ACTIONS`` list of action objects."""
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the working directory import
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # any import failure is the user's module: report it
            raise InputError(f"--actions {name}: cannot import it: {exc}") from exc
        register = getattr(module, "register_actions", None)
        actions = getattr(module, "ACTIONS", None)
        if callable(register):
            register(registry)
        elif actions is not None:
            for action in actions:
                registry.register(action)
        else:
            raise InputError(
                f"--actions {name}: the module has neither a register_actions(registry) "
                "function nor an ACTIONS list"
            )


def build_engine(
    db: str,
    *,
    actions: Sequence[str] = (),
    python_allow: Sequence[str] = (),
    recover: bool = False,
    concurrency: int = 1000,
    table_prefix: str = DEFAULT_TABLE_PREFIX,
    keeper: str | None = None,
    **settings_kwargs: Any,
) -> Engine:
    registry = ActionRegistry()
    load_action_modules(actions, registry)
    settings = EngineSettings(
        recover=recover,
        python_allowed_prefixes=tuple(python_allow),
        concurrency=concurrency,
        table_prefix=table_prefix,
        **settings_kwargs,
    )
    return Engine.from_url(db, actions=registry, settings=settings, keeper=keeper or None)
