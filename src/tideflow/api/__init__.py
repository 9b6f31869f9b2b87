"""The HTTP API of tideflow: a FastAPI app over the engine's public API.

    from tideflow.api import ApiAuth, create_app, serve

    app = create_app(engine, auth=ApiAuth.from_sources(token_file=Path("tokens")))
    await serve(app, "127.0.0.1", 8080, stop=stop_event)

The app can also be mounted into another ASGI application. Needs the ``server`` extra
(``pip install 'tideflow[server]'``); the core package never imports this one.
"""

from __future__ import annotations

from ..extras import require_server_extra

require_server_extra("the HTTP API")

from .app import API_PREFIX, create_app  # noqa: E402
from .auth import ApiAuth, ApiToken, is_loopback  # noqa: E402
from .serve import check_bind, serve  # noqa: E402

__all__ = [
    "API_PREFIX",
    "ApiAuth",
    "ApiToken",
    "check_bind",
    "create_app",
    "is_loopback",
    "serve",
]
