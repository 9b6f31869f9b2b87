"""The FastAPI app factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..engine.engine import Engine
from ..metrics import MetricsObserver
from ..views import Views
from .auth import ApiAuth
from .errors import install_error_handlers
from .middleware import UI_PATH, AuthMiddleware, BodyLimitMiddleware
from .routes.dags import dags_router
from .routes.health import health_router
from .routes.instances import instances_router
from .routes.logs import logs_router
from .routes.nodes import nodes_router
from .schemas import DefinitionText, ErrorBody

API_PREFIX = "/api/v1"
DEFAULT_MAX_BODY = 10 * 1024 * 1024


class _LoopbackOnly:
    """The default of ``create_app(auth=...)``: no tokens, loopback clients only."""

    def __repr__(self) -> str:
        return "LOOPBACK_ONLY"


LOOPBACK_ONLY: Any = _LoopbackOnly()


def create_app(
    engine: Engine,
    *,
    auth: ApiAuth | None = LOOPBACK_ONLY,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    metrics: bool | MetricsObserver = True,
) -> Any:
    """The HTTP API over ``engine`` (which the caller starts and closes).

    ``auth``: the accepted tokens (an :class:`ApiAuth`). Left out, or an ``ApiAuth`` without
    tokens, the app answers only clients on a loopback address (others get 403), so an app
    mounted in a public service is not open by accident. ``auth=None`` opens it to every
    client without a token: choose that only when your own middleware or proxy
    authenticates. ``max_body_bytes``: larger request bodies are answered 413.
    ``metrics``: serve ``/metrics`` — True builds a
    :class:`~tideflow.metrics.MetricsObserver` on the engine, or pass one already built (to
    also serve it on its own port), or False for no ``/metrics``.

    The app can be mounted into another ASGI app (``parent.mount("/flows", app)``); its
    routes then live under that prefix. The return type is :class:`fastapi.FastAPI`."""
    if auth is LOOPBACK_ONLY:
        auth = ApiAuth()
    elif auth is None:
        auth = ApiAuth.open()
    elif not isinstance(auth, ApiAuth):
        raise TypeError(f"auth must be an ApiAuth or None, not {type(auth).__name__}")
    observer: MetricsObserver | None
    if isinstance(metrics, MetricsObserver):
        observer = metrics
    elif metrics:
        observer = MetricsObserver(engine)
    else:
        observer = None
    app = FastAPI(
        title="tideflow",
        summary="A lightweight, embeddable, distributed DAG workflow engine.",
        version=_version(),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.tideflow_engine = engine
    app.state.tideflow_auth = auth
    app.state.tideflow_metrics = observer
    install_error_handlers(app)
    views = Views(engine)
    app.include_router(dags_router(engine, views), prefix=API_PREFIX)
    # before the instances' routes: a task id may hold '/', and '.../tasks/{id}' would
    # take '.../tasks/{id}/logs' for a task named 'id/logs'
    app.include_router(logs_router(engine), prefix=API_PREFIX)
    app.include_router(logs_router(engine, "/instances"), prefix=API_PREFIX)
    app.include_router(instances_router(engine, views), prefix=API_PREFIX)
    app.include_router(nodes_router(engine), prefix=API_PREFIX)
    app.include_router(health_router(engine, observer))
    _mount_ui(app)
    # the last added runs first: auth answers before a body is read
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(AuthMiddleware, auth=auth)
    app.openapi = lambda: _openapi(app, auth)  # type: ignore[method-assign]
    return app


def _mount_ui(app: FastAPI) -> None:
    """The web UI's static files at ``/ui/`` (``/ui`` redirects there)."""
    from fastapi.staticfiles import StaticFiles

    from ..ui import STATIC_DIR

    app.mount(UI_PATH, StaticFiles(directory=STATIC_DIR, html=True), name="ui")


def _version() -> str:
    from .. import __version__

    return __version__


def _openapi(app: FastAPI, auth: ApiAuth) -> dict[str, Any]:
    """FastAPI's document, adjusted to what the API really answers: request-shape problems
    are 400 (not FastAPI's 422, which here means an invalid definition), in the one error
    shape; and the bearer-token scheme."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ErrorBody, DefinitionText):
        schemas[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            responses = op.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422", {})):
                del responses["422"]
                responses.setdefault("400", {"description": "Bad request parameters or body",
                                             "content": error_ref})
            if method in ("post", "put", "patch"):
                responses.setdefault("413", {"description": "The request body is too large",
                                             "content": error_ref})
            if auth.enabled and path != "/healthz":
                op["security"] = [{"bearer": []}]
                responses.setdefault("401", {"description": "No token, or an unknown one",
                                             "content": error_ref})
                responses.setdefault("403", {"description": "A read-only token",
                                             "content": error_ref})
    if auth.enabled:
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http", "scheme": "bearer",
        }
    app.openapi_schema = doc
    return doc
