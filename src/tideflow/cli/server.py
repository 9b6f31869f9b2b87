"""``tideflow server``: run a node of a cluster (a worker, or a watcher that executes nothing).

Workers share one database; one of them is elected leader and dispatches. The node registers
every DAG file under ``--dags`` at start (a new version only when the file changed), logs one
line per leadership change and per dispatched batch, and stops cleanly on SIGTERM/SIGINT:
it stops taking work, leaves its running attempts to be picked up again, gives up
leadership and leaves the node list so that others take over at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import typer

from ..cluster.settings import (
    DEFAULT_HEARTBEAT_SECS,
    DEFAULT_LEASE_SECS,
    DEFAULT_UNHEALTHY_SECS,
    ClusterSettings,
)
from ..definition.loader import load_dag_file
from ..definition.model import DagDef
from ..engine.engine import Engine
from ..errors import InputError, SchemaError, StoreError
from ..logformat import set_log_node, use_log_format
from ..vars import parse_kv_pairs
from .common import (
    DbOpt,
    KeeperOpt,
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

log = logging.getLogger("tideflow.server")

#: execution slots of one node, at most (the number is stored in the node's row)
MAX_CONCURRENCY = 1_000_000


def server_command(
    role: str = typer.Option("worker", "--role", help="worker or watcher."),
    db: str = DbOpt,
    log_format: str = LogFormatOpt,
    keeper: str | None = KeeperOpt,
    table_prefix: str = TablePrefixOpt,
    dags: Path | None = typer.Option(
        None, "--dags",
        help="Register every DAG file (.yaml, .yml, .json) under DIR, sub-folders included."),
    actions: list[str] = typer.Option([], "--actions", "-a", help="Action module (repeatable)."),
    labels: list[str] = typer.Option([], "--labels", "-l", help="Worker label k=v (repeatable)."),
    concurrency: int = typer.Option(1000, "--concurrency", min=1, max=MAX_CONCURRENCY,
                                     help="Execution slots."),
    node_id: str | None = typer.Option(None, "--node-id", help="Node id (default POD_NAME or "
                                       "host name plus pid)."),
    python_allow: list[str] = typer.Option(
        [], "--python-allow", help="A module prefix the python action may call (repeatable)."
    ),
    http: str | None = typer.Option(None, "--http", help="Serve the HTTP API on HOST:PORT."),
    token_file: Path | None = typer.Option(None, "--token-file", help="API tokens, one a line."),
    token_env: str | None = typer.Option(None, "--token-env",
                                         help="Environment variable holding API tokens."),
    metrics_names: str = typer.Option(
        "tideflow", "--metrics-names", envvar="TIDEFLOW_METRICS_NAMES",
        help="With --http, the series /metrics shows: tideflow, fastflow (Fastflow's names "
        "and worker_key label, for existing dashboards) or both."),
    unhealthy_secs: float | None = typer.Option(
        None, "--unhealthy-secs",
        help=f"A node silent this long is dead and its runs move [default: "
             f"{DEFAULT_UNHEALTHY_SECS:g}].", show_default=False),
    heartbeat_secs: float | None = typer.Option(
        None, "--heartbeat-secs",
        help=f"Heartbeat interval (each heartbeat also renews the leader's lease) [default: "
             f"{DEFAULT_HEARTBEAT_SECS:g}, or half the lease if smaller].", show_default=False),
    lease_secs: float | None = typer.Option(
        None, "--lease-secs",
        help=f"The leader's lease: a dead leader is replaced within it [default: "
             f"{DEFAULT_LEASE_SECS:g}, or --unhealthy-secs if smaller].", show_default=False),
    otel: bool | None = OtelOpt,
    task_logs: bool = TaskLogsOpt,
    task_log_max_bytes: int = TaskLogMaxOpt,
    task_log_flush_secs: float = TaskLogFlushOpt,
) -> None:
    """Run a tideflow node until SIGTERM or SIGINT."""
    logging.getLogger("tideflow").setLevel(logging.INFO)
    with cli_errors():
        use_log_format(log_format)
        if role not in ("worker", "watcher"):
            raise InputError(f"--role {role!r}: use worker or watcher")
        if concurrency < 1:
            raise InputError("--concurrency must be at least 1")
        node_labels = parse_kv_pairs(labels, what="--labels")
        for flag, value in (("--unhealthy-secs", unhealthy_secs), ("--lease-secs", lease_secs),
                            ("--heartbeat-secs", heartbeat_secs)):
            if value is not None and value <= 0:
                raise InputError(f"{flag} {value:g}: give a number of seconds above 0")
        try:
            # unset timings take the library's defaults: one story for both
            cluster = ClusterSettings(role=role, unhealthy_secs=unhealthy_secs or 0.0,
                                      lease_secs=lease_secs or 0.0,
                                      heartbeat_secs=heartbeat_secs or 0.0)
        except InputError as exc:
            raise InputError("--" + exc.message.replace("_", "-", 1)) from exc
        engine = build_engine(db, actions=actions, python_allow=python_allow,
                              concurrency=concurrency, recover=True, cluster=cluster,
                              labels=node_labels, node_id=node_id or "",
                              table_prefix=table_prefix, keeper=keeper, otel=otel,
                              **task_log_settings(task_logs, task_log_max_bytes,
                                                  task_log_flush_secs))
        set_log_node(engine.node_id)
        run_to_end(_serve(engine, dags, http, token_file, token_env, metrics_names))


async def _register_dir(engine: Engine, folder: Path) -> None:
    """Register every definition under ``folder``: all are read (off the event loop) and
    checked before any is stored; an unchanged one makes no new version."""
    if not folder.is_dir():
        raise InputError(f"--dags {folder}: not a folder")
    dags = await engine.definitions.run(_load_dir, folder)
    for path, dag in dags:
        record = await engine.register_loaded(lambda dag=dag: dag)  # type: ignore[misc]
        if record.unchanged:
            log.info("%s: DAG %s unchanged (version %d)", path, record.id, record.version)
        else:
            log.info("registered %s as %s version %d", path, record.id, record.version)


def _load_dir(folder: Path) -> list[tuple[Path, DagDef]]:
    """The DAGs of the ``.yaml``, ``.yml`` and ``.json`` files under ``folder``, sub-folders
    included, by path. Hidden files and folders are left out (a Kubernetes ConfigMap volume
    keeps a second copy of every file under ``..data``); empty files are skipped with a
    warning; two files defining one DAG id are an error."""
    found: dict[str, Path] = {}
    out: list[tuple[Path, DagDef]] = []
    for path in _definition_files(folder):
        if _blank(path):
            log.warning("--dags: %s is empty (or only comments); skipped", path)
            continue
        dag = load_dag_file(path)
        if dag.id in found:
            raise InputError(
                f"--dags {folder}: {found[dag.id]} and {path} both define DAG '{dag.id}'"
                " — give each DAG one file"
            )
        found[dag.id] = path
        out.append((path, dag))
    return out


def _blank(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False  # the loader says why it cannot be read
    if len(head) == 4096:
        return False
    lines = head.decode("utf-8-sig", "replace").splitlines()
    return all(not line.strip() or line.lstrip().startswith("#") for line in lines)


def _definition_files(folder: Path) -> list[Path]:
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(
            Path(root, n) for n in sorted(names)
            if not n.startswith(".") and Path(n).suffix.lower() in (".yaml", ".yml", ".json")
        )
    return files


async def _serve(
    engine: Engine,
    dags: Path | None,
    http: str | None,
    token_file: Path | None,
    token_env: str | None,
    metrics_names: str,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # the HTTP settings are checked before the node joins: a bad address, token source or a
    # missing `server` extra stops it at once instead of leaving a node without its API
    web = _http_parts(engine, http, token_file, token_env, metrics_names) if http else None
    if not await _database_reached(engine, stop):
        return
    if not await _joined(engine, stop):
        return
    servers: list[asyncio.Task[Any]] = []
    failure: list[BaseException] = []
    try:
        if dags is not None:
            await _register_dir(engine, dags)
        if web is not None:
            task = loop.create_task(web(stop))

            def _ended(t: asyncio.Task[Any]) -> None:
                if not t.cancelled() and t.exception() is not None:
                    failure.append(t.exception())  # type: ignore[arg-type]
                    stop.set()

            task.add_done_callback(_ended)
            servers.append(task)
        notice(f"node {engine.node_id} running "
               f"({engine.settings.cluster.role if engine.settings.cluster else ''})",
               logging.INFO)
        await stop.wait()
    finally:
        log.info("stopping node %s", engine.node_id)
        stop.set()
        for t in servers:
            try:
                await asyncio.wait_for(t, 10)
            except (Exception, asyncio.CancelledError):
                t.cancel()
        await engine.close()
    if failure:
        raise failure[0]


async def _joined(engine: Engine, stop: asyncio.Event) -> bool:
    """Start the engine; joining retries while the Keeper (etcd) cannot be reached, so a
    SIGTERM meanwhile stops the node rather than waiting for the Keeper. False when stopped."""
    start = asyncio.ensure_future(engine.start())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([start, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if start.done():
        start.result()  # its error, if it failed
        return True
    start.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await start
    log.info("stopped before joining the cluster")
    await engine.close()
    return False


async def _database_reached(engine: Engine, stop: asyncio.Event) -> bool:
    """Open the database, waiting while it cannot be reached (it is restarting, or starts
    after this node): a node does not give up by itself. False when stopped meanwhile; a
    schema this version cannot use stops it at once."""
    delay = 0.5
    while not stop.is_set():
        try:
            await engine.store.open(migrate=engine.settings.migrate)
            return True
        except SchemaError:
            raise
        except StoreError as exc:
            log.warning("cannot open the database yet (%s); retrying in %.1fs", exc.message,
                        delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
        delay = min(delay * 2, 5.0)
    return False


def _http_parts(
    engine: Engine, address: str, token_file: Path | None, token_env: str | None,
    metrics_names: str,
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    from ..api import ApiAuth, create_app, serve
    from ..metrics import MetricsObserver

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--http {address!r}: use HOST:PORT, e.g. 127.0.0.1:8080")
    auth = ApiAuth.from_sources(token_file=token_file, token_env=token_env)
    metrics = MetricsObserver(engine, names=metrics_names)
    app = create_app(engine, auth=auth, metrics=metrics)

    async def run(stop: asyncio.Event) -> None:
        await serve(app, host, int(port), stop=stop, auth=auth)

    return run
