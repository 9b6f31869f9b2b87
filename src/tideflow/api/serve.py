"""Serving the API app, safe by default: no public address without tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..asgi import run_asgi
from ..errors import InputError
from .auth import ApiAuth, is_loopback


def check_bind(host: str, auth: ApiAuth | None) -> None:
    """Refuse to serve the API on a non-loopback address without tokens configured."""
    if is_loopback(host) or (auth is not None and auth.enabled):
        return
    raise InputError(
        f"refusing to serve the HTTP API on {host} without authentication: anyone who can "
        "reach it could run and cancel workflows. Configure tokens (a token file or an "
        "environment variable), or bind to 127.0.0.1",
        details={"host": host},
    )


async def serve(
    app: Any,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    auth: ApiAuth | None = None,
    on_listening: Callable[[str, int], None] | None = None,
    access_log: bool = False,
) -> None:
    """Serve ``app`` (from :func:`create_app`, or an app it is mounted into) on
    ``host:port`` with uvicorn until ``stop`` is set. No signal handlers are installed: the
    caller owns signals. ``auth`` defaults to the one the app was created with; without
    tokens only a loopback ``host`` is accepted (:class:`InputError` otherwise).
    ``on_listening(host, port)`` is called once the server accepts connections (``port`` 0
    picks a free port)."""
    state = getattr(app, "state", None)
    check_bind(host, auth if auth is not None else getattr(state, "tideflow_auth", None))
    await run_asgi(app, host, port, stop=stop, on_listening=on_listening,
                   access_log=access_log)
