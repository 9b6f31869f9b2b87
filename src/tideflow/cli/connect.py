"""The options that pick where a client verb goes, and running a verb with its client.

``--server URL`` (or ``TIDEFLOW_SERVER``) talks to a tideflow server over HTTP, with the token
from ``TIDEFLOW_TOKEN``; otherwise ``--db URL`` (or ``TIDEFLOW_DB``, default
``sqlite:///tideflow.db``, with ``--table-prefix`` or ``TIDEFLOW_TABLE_PREFIX``) goes straight
to the database."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import typer

from .clients import Client, open_client
from .common import DEFAULT_DB, DEFAULT_TABLE_PREFIX, client_errors

T = TypeVar("T")

log = logging.getLogger("tideflow.cli")

#: how long tasks still pending after the client closed get to finish once cancelled
_SHUTDOWN_GRACE_SECS = 2.0

TOKEN_ENV = "TIDEFLOW_TOKEN"

ServerOpt = typer.Option(
    None, "--server", envvar="TIDEFLOW_SERVER",
    help="A tideflow server's URL (e.g. http://127.0.0.1:8080); its token is read from "
    "TIDEFLOW_TOKEN. Without it, --db is used.",
)
DbOpt = typer.Option(DEFAULT_DB, "--db", envvar="TIDEFLOW_DB",
                     help="Database URL, when no --server is given.")
JsonOpt = typer.Option(False, "--json", help="Print the API's JSON (for scripts).")
ActionsOpt = typer.Option(
    [], "--actions", "-a",
    help="With --db: a module whose actions to register (repeatable), for DAGs that use them.",
)


def with_client(
    server: str | None,
    db: str,
    fn: Callable[[Client], Awaitable[T]],
    *,
    actions: Sequence[str] = (),
    table_prefix: str = DEFAULT_TABLE_PREFIX,
) -> T:
    """Open the client, run ``fn`` with it, and turn errors into the documented exit codes."""

    async def go() -> T:
        client = open_client(server=server, db=db, token=os.environ.get(TOKEN_ENV),
                             actions=actions, table_prefix=table_prefix)
        async with client:
            return await fn(client)

    with client_errors():
        return run_to_end(go())


def _quiet_exit_noise(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: what the PostgreSQL driver leaves behind when the server
    closes the side connection that carried a query's cancel request (a future nobody awaits,
    failed with "unexpected connection_lost() call") is no error of the command; everything
    else is reported as usual."""
    exc = context.get("exception")
    if (isinstance(exc, ConnectionError) and "unexpected connection_lost()" in str(exc)
            and "never retrieved" in str(context.get("message", ""))):
        log.debug("ignored at exit: %s", exc)
        return
    loop.default_exception_handler(context)


def run_to_end(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, except that a background task which ignores its cancellation at exit
    cannot keep a finished command from exiting (it gets a short grace, then is left), and a
    database driver's leftovers at exit are not printed as errors."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_quiet_exit_noise)
    try:
        return loop.run_until_complete(main)
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            _, stuck = loop.run_until_complete(asyncio.wait(pending, timeout=_SHUTDOWN_GRACE_SECS))
            for task in stuck:
                log.warning("task %s did not stop when cancelled; exiting anyway",
                            task.get_name())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
