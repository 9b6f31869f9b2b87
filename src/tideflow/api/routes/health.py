"""``/healthz`` (the process serves), ``/readyz`` (it can do its work) and ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ...engine.engine import Engine
from ...errors import TideflowError
from ..errors import error_response
from ..schemas import HealthOut
from . import errors_for


def health_router(engine: Engine, metrics: Any | None) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=HealthOut, summary="Alive: the process serves")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get(
        "/readyz",
        response_model=HealthOut,
        summary="Ready: the database is reachable and its schema current",
        responses=errors_for(503),
    )
    async def readyz() -> JSONResponse:
        try:
            await engine.check_ready()
        except TideflowError as exc:
            return error_response(503, "not_ready", exc.message, {"cause": exc.code})
        return JSONResponse({"status": "ready"})

    if metrics is not None:
        @router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                    responses={200: {"content": {"text/plain": {}}}})
        async def scrape() -> Response:
            body, content_type = await metrics.scrape()
            return Response(body, media_type=content_type)

    return router
