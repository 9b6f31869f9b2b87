"""``/api/v1/dags``: list, apply, get, delete and run DAGs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from ...definition.loader import API_BODY, load_dag_dict, load_dag_text, read_definition_text
from ...definition.model import DagDef
from ...engine.engine import Engine
from ...engine.offload import is_large
from ...errors import DefinitionError
from ...serialize import FIRE_TIMES, applied_dag_json, dag_to_json
from ...store.records import DagRecord
from ...views import Views
from ..errors import UnsupportedMediaTypeError
from ..schemas import AppliedDagOut, DagList, DagOut, InstanceOut, RunRequest
from . import errors_for

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
TEXT_TYPES = YAML_TYPES | {"text/plain"}
JSON_TYPES = frozenset({"application/json"})
#: the most next cron ticks one read of a DAG lists
MAX_FIRE_TIMES = 100

APPLY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "The definition: YAML (application/yaml or text/yaml), or JSON "
            "(application/json) — either the definition document itself, or "
            '`{"definition": "...YAML or JSON text..."}`.'
        ),
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "text/yaml": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/DefinitionText"},
                        {"type": "object", "description": "The definition document."},
                    ]
                }
            },
        },
    }
}


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            [f"{API_BODY}: is not UTF-8 text (bad byte at offset {exc.start})"], source=API_BODY
        ) from None


def definition_from_body(content_type: str, raw: bytes) -> DagDef:
    """The DAG in an apply request's body, with the loader's messages when it is invalid."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or media.endswith("+json"):
        # read once: the wrapper is looked for in the data the definition is loaded from
        doc = read_definition_text(_decode(raw), format="json")
        if isinstance(doc, dict) and set(doc) == {"definition"}:
            inner = doc["definition"]
            if isinstance(inner, str):
                return load_dag_text(inner)
            if isinstance(inner, dict):
                return load_dag_dict(inner)
            raise DefinitionError(
                [f"{API_BODY}: 'definition' must be the definition's YAML or JSON text, or "
                 "the document itself"],
                source=API_BODY,
            )
        return load_dag_dict(doc)
    if media in YAML_TYPES:
        return load_dag_text(_decode(raw), format="yaml")
    if media in TEXT_TYPES:
        return load_dag_text(_decode(raw))
    raise UnsupportedMediaTypeError(
        f"cannot apply a definition sent as {media or 'no content type'}: send YAML "
        "(application/yaml) or JSON (application/json)"
    )


def dags_router(engine: Engine, views: Views) -> APIRouter:
    router = APIRouter(prefix="/dags", tags=["dags"])

    async def respond(records: list[DagRecord], content: Callable[[], Any], status: int = 200
                      ) -> JSONResponse:
        """The response, encoded off the event loop when it holds a large definition."""
        large = any(is_large(r.definition) for r in records)
        return await engine.definitions.run_if(
            large, lambda: JSONResponse(content(), status_code=status)
        )

    @router.get("", response_model=DagList, summary="List DAGs (newest version of each)")
    async def list_dags() -> JSONResponse:
        dags = await engine.list_dags()
        return await respond(dags, lambda: {"items": [dag_to_json(d) for d in dags]})

    @router.post(
        "",
        status_code=201,
        response_model=AppliedDagOut,
        summary="Create or update a DAG (a new version, unless unchanged)",
        description="The definition is read and checked off the event loop, within its size "
        "and time budget. Answers 201 with the new version; when the newest version already "
        "holds this very definition, nothing is stored and it answers 200 with that version.",
        openapi_extra=APPLY_BODY,
        responses={200: {"description": "Unchanged: the newest version, as it was"},
                   **errors_for(400, 415, 422)},
    )
    async def apply_dag(request: Request) -> JSONResponse:
        content_type, raw = request.headers.get("content-type", ""), await request.body()
        record = await engine.register_loaded(
            functools.partial(definition_from_body, content_type, raw)
        )
        return await respond([record], lambda: applied_dag_json(record),
                             200 if record.unchanged else 201)

    @router.get("/{dag_id:path}", response_model=DagOut, summary="Get a DAG",
                responses=errors_for(400, 404))
    async def get_dag(
        dag_id: str,
        version: int | None = Query(None, ge=1, le=2**31 - 1,
                                    description="A given version (default: the newest)."),
        next_runs: int = Query(FIRE_TIMES, alias="next", ge=0, le=MAX_FIRE_TIMES,
                               description="How many next cron ticks `nextFireTimes` lists."),
    ) -> JSONResponse:
        record = await engine.get_dag(dag_id, version)
        return await respond([record], lambda: dag_to_json(record, fire_times=next_runs))

    @router.delete(
        "/{dag_id:path}",
        status_code=204,
        summary="Delete a DAG",
        description="Refused (409) while it has unfinished instances, unless `force=true`: "
        "then the versions they run on are kept until they end.",
        responses=errors_for(400, 404, 409),
    )
    async def delete_dag(dag_id: str, force: bool = False) -> Response:
        await engine.delete_dag(dag_id, force=force)
        return Response(status_code=204)

    def schedule_route(paused: bool) -> None:
        async def set_paused(dag_id: str) -> JSONResponse:
            record = await (engine.pause_dag if paused else engine.resume_dag)(dag_id)
            return await respond([record], lambda: dag_to_json(record))

        router.add_api_route(
            f"/{{dag_id:path}}/{'pause' if paused else 'resume'}",
            set_paused,
            methods=["POST"],
            response_model=DagOut,
            name=f"{'pause' if paused else 'resume'}_dag",
            summary=f"{'Pause' if paused else 'Resume'} a DAG's schedule",
            description=(
                "Its cron fires no more until it is resumed; no new version. Manual runs and "
                "running instances are not affected. Pausing a paused DAG changes nothing."
                if paused else
                "Its cron fires again from the next tick after now: ticks missed while it was "
                "paused are not fired. Resuming a running schedule changes nothing."
            ),
            responses=errors_for(404),
        )

    schedule_route(True)
    schedule_route(False)

    @router.post(
        "/{dag_id:path}/run",
        status_code=201,
        response_model=InstanceOut,
        summary="Run a DAG",
        description="Starts an instance of the newest version. With `wait`, answers once it "
        "ends or waits for a person, or the time is up.",
        responses=errors_for(400, 404, 409),
    )
    async def run_dag(dag_id: str, body: RunRequest | None = None,
                      traceparent: str | None = Header(
                          None, include_in_schema=False)) -> JSONResponse:
        body = body or RunRequest.model_validate({})
        inst = await engine.run_dag(
            dag_id,
            body.vars,
            body.tags,
            selector=body.selector,
            wait=body.wait or None,
            priority=body.priority,
            idempotency_key=body.idempotencyKey,
            # a traced caller's run continues its trace (an invalid header is ignored)
            trace_parent=traceparent,
        )
        return JSONResponse(await views.instance(inst), status_code=201)

    return router
