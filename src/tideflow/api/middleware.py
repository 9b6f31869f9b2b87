"""ASGI middleware of the API: token auth and the request body limit.

Both are plain ASGI (not Starlette's BaseHTTPMiddleware) so they add no task per request and
answer before the app parses anything."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import ApiAuth

#: routes that never need a token: liveness must be observable by a bare probe
OPEN_PATHS = frozenset({"/healthz"})
#: the web UI's static files carry no data (the page asks for a token when the API needs one)
UI_PATH = "/ui"


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path == UI_PATH or path.startswith(UI_PATH + "/")


def route_path(scope: Scope) -> str:
    """The path inside this app, without the prefix it is mounted under."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path


async def send_error(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    """Answer with the API's one error shape, outside of FastAPI."""
    body = json.dumps({"error": code, "message": message, "details": None}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class AuthMiddleware:
    """Refuses requests without a valid token (401) or with a read-only token on a method
    that changes something (403), when any token is configured; with none, requests from
    clients that are not on a loopback address (403), unless the API was opened to all."""

    def __init__(self, app: ASGIApp, auth: ApiAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        # a websocket route (none today, but one may be mounted) needs a token like the rest
        if kind not in ("http", "websocket") or self.auth.open_to_all or is_open(
            route_path(scope)
        ):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        client = scope.get("client")
        failure = self.auth.check(header, scope.get("method", "GET"),
                                  client[0] if client else None)
        if failure is None:
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        extra = {"WWW-Authenticate": "Bearer"} if failure.status == 401 else None
        await send_error(send, failure.status, failure.code, failure.message, extra)


class BodyLimitMiddleware:
    """Reads a request body up to ``max_bytes`` before the app sees it; a larger one is
    answered 413 at once. Buffering is fine at this size and keeps the limit independent of
    how a route reads its body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = (
            f"the request body is larger than this server's limit of {self.max_bytes:,} bytes"
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, 400, "invalid_request", "bad Content-Length header")
                    return
                if declared > self.max_bytes:
                    await send_error(send, 413, "body_too_large", too_large)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: there is no one to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_error(send, 413, "body_too_large", too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
