"""``/api/v1/nodes``: the live nodes of the deployment."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...engine.engine import Engine
from ...serialize import node_to_json
from ..schemas import NodeList


def nodes_router(engine: Engine) -> APIRouter:
    router = APIRouter(prefix="/nodes", tags=["nodes"])

    @router.get("", response_model=NodeList,
                summary="The nodes with their role, leader flag, heartbeat, load, labels")
    async def list_nodes() -> JSONResponse:
        nodes = await engine.list_nodes()
        return JSONResponse({"items": [node_to_json(n) for n in nodes]})

    return router
