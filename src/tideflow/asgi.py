"""Running an ASGI app with uvicorn inside the caller's event loop.

The caller owns the process's signals: uvicorn installs no handler here, and stops when the
caller's ``stop`` event is set. The listening socket is bound before uvicorn starts, so a busy
port is a clear :class:`InputError` rather than uvicorn exiting the process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

from .errors import InputError

log = logging.getLogger("tideflow.server")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


async def run_asgi(
    app: Any,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    on_listening: Callable[[str, int], None] | None = None,
    access_log: bool = False,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set (or the server fails)."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the caller owns signals

        def install_signal_handlers(self) -> None:  # uvicorn before 0.29
            return None

    sock = bind_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        log_config=None,  # keep the application's logging setup
        access_log=access_log,
        server_header=False,
        lifespan="auto",
        # requests that wait (run or command with `wait`) get this long to finish at stop
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="tideflow-http")
    stopping = asyncio.create_task(stop.wait(), name="tideflow-http-stop")
    try:
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if server.started and on_listening is not None:
            on_listening(bound_host, bound_port)
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        try:
            await serving
        except SystemExit as exc:  # uvicorn exits on a failed startup (e.g. app lifespan)
            raise InputError(f"the HTTP server on {host}:{port} failed to start") from exc
        finally:
            sock.close()
