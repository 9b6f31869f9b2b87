"""One error shape for every answer that is not a success:

    {"error": "invalid_state", "message": "cannot pause instance ...: it is success ...",
     "details": {"state": "success"}}

Tideflow's errors map to a status by class; request-shape problems are 400, invalid
definitions 422; anything unexpected is logged and answered 500 with a generic message, never
a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    ConflictError,
    DefinitionError,
    EngineClosedError,
    InputError,
    NotFoundError,
    StoreError,
    TideflowError,
    VarsError,
    WriteRefusedError,
)

log = logging.getLogger("tideflow.api")


class UnsupportedMediaTypeError(InputError):
    """A body in a format the route does not read."""

    code = "unsupported_media_type"


#: most specific first
_STATUS: tuple[tuple[type[TideflowError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (DefinitionError, 422),
    (UnsupportedMediaTypeError, 415),
    (VarsError, 422),
    (InputError, 400),
    (WriteRefusedError, 422),
    (StoreError, 503),
    (EngineClosedError, 503),
)

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


def status_for(exc: TideflowError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": code, "message": message, "details": jsonable_encoder(details)}
    return JSONResponse(body, status_code=status, headers=headers)


async def _tideflow_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TideflowError)
    status = status_for(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return error_response(status, exc.code, exc.message, exc.details)


def _where(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)] if isinstance(loc, list | tuple) else []
    return ".".join(parts)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        loc = err.get("loc", ())
        problems.append({"loc": [str(p) for p in loc], "msg": str(err.get("msg", ""))})
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = _where(first["loc"])
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s))"
    return error_response(400, "invalid_request", message, {"problems": problems})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    return error_response(exc.status_code, code, message, None, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed unexpectedly", request.method, request.url.path)
    return error_response(
        500, "internal", "the server failed to handle this request; its log has the details"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TideflowError, _tideflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
