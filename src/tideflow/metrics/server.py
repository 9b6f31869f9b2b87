"""Serving the metrics alone, on their own port (when the HTTP API is off, or kept private)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from ..asgi import run_asgi
from .observer import MetricsObserver


class MetricsApp:
    """A minimal ASGI app: ``GET /metrics`` (or ``/``) answers the scrape; anything else
    404. Mountable into another ASGI app too."""

    def __init__(self, observer: MetricsObserver) -> None:
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        if path not in ("/", "/metrics") or scope.get("method") not in ("GET", "HEAD"):
            await _respond(send, 404, b"not found: scrape GET /metrics\n",
                           "text/plain; charset=utf-8")
            return
        body, content_type = await self.observer.scrape()
        await _respond(send, 200, body if scope.get("method") == "GET" else b"", content_type)


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


async def serve_metrics(
    observer: MetricsObserver,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    on_listening: Callable[[str, int], None] | None = None,
) -> None:
    """Serve ``GET /metrics`` of ``observer`` on ``host:port`` until ``stop`` is set.

    Metrics change nothing and carry no secrets, so any address may be used (a scraper
    usually runs elsewhere); no signal handlers are installed."""
    await run_asgi(MetricsApp(observer), host, port, stop=stop, on_listening=on_listening)
