"""``/api/v1/dag-instances``: list and read instances and their tasks, and command them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ...engine.engine import Engine
from ...errors import InputError
from ...store.records import InstanceRecord
from ...vars import parse_kv_pairs
from ...views import Views, find_task
from ..schemas import (
    CommandRequest,
    ContinueRequest,
    InstanceOut,
    InstancePage,
    RejectRequest,
    TaskContinueRequest,
    TaskOut,
    TaskRejectRequest,
    WaitRequest,
)
from . import errors_for

MAX_PAGE = 1000

_COMMAND_DOC = {
    "retry": "Retry the failed/canceled tasks of a failed or canceled instance (or the given "
    "ones): each gets one more attempt.",
    "cancel": "Cancel an unfinished instance (or the given tasks): running tasks get their "
    "cancellation, tasks not yet started never start.",
    "continue": "Continue the blocked tasks of an instance (or the given ones). An approval "
    "takes its decision: `inputs` (checked against the ones it declares) and `by` (one of its "
    "approvers, when it names them); a decision that does not fit is refused (400).",
    "reject": "Reject blocked approval tasks (the given ones, or all of the instance's): "
    "each fails with `reason`, recorded with `by`.",
    "pause": "Pause a running instance: running tasks finish, no new task starts.",
    "resume": "Resume a paused instance.",
}


def _utc(value: datetime | None, name: str) -> datetime | None:
    """A filter time in UTC (a time without an offset is taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InputError(f"{name} {value.isoformat()} is out of range") from None


def _wait(body: WaitRequest | None) -> float | None:
    return body.wait if body is not None else None


def _statuses(values: list[str]) -> list[str] | None:
    """``status`` may be repeated and each may be a comma list."""
    out = [s.strip() for v in values for s in v.split(",") if s.strip()]
    return out or None


async def _run_command(
    engine: Engine, kind: str, instance_id: str, task_ids: list[str] | None, wait: float | None,
    body: BaseModel | None = None,
) -> InstanceRecord:
    wait = wait or None
    if isinstance(body, ContinueRequest | TaskContinueRequest):
        return await engine.continue_(instance_id, task_ids, inputs=body.inputs, by=body.by,
                                      wait=wait)
    if isinstance(body, RejectRequest | TaskRejectRequest):
        return await engine.reject(instance_id, task_ids, reason=body.reason, by=body.by,
                                   wait=wait)
    if kind == "retry":
        return await engine.retry(instance_id, task_ids, wait=wait)
    if kind == "cancel":
        return await engine.cancel(instance_id, task_ids, wait=wait)
    if kind == "continue":
        return await engine.continue_(instance_id, task_ids, wait=wait)
    if kind == "pause":
        return await engine.pause(instance_id, wait=wait)
    return await engine.resume(instance_id, wait=wait)


def instances_router(engine: Engine, views: Views) -> APIRouter:
    router = APIRouter(prefix="/dag-instances", tags=["dag-instances"])
    command_errors = errors_for(400, 404, 409)

    @router.get(
        "",
        response_model=InstancePage,
        summary="List instances, newest first (without their tasks)",
        responses=errors_for(400),
    )
    async def list_instances(
        dag_id: str | None = Query(None, alias="dagId", description="Only this DAG's."),
        status: list[str] = Query(
            [], description="Only in these states (repeat it, or a comma list)."
        ),
        tag: list[str] = Query(
            [], description="Only with this tag, `key=value` (repeat it: all must match)."
        ),
        created_after: datetime | None = Query(None, alias="createdAfter"),
        created_before: datetime | None = Query(None, alias="createdBefore"),
        limit: int = Query(50, ge=1, le=MAX_PAGE),
        cursor: str | None = Query(
            None, max_length=200, description="`nextCursor` of the previous page."
        ),
    ) -> JSONResponse:
        found = await engine.list_instances(
            dag_id=dag_id,
            status=_statuses(status),
            tags=parse_kv_pairs(tag, what="tag") or None,
            created_after=_utc(created_after, "createdAfter"),
            created_before=_utc(created_before, "createdBefore"),
            # one more than asked tells whether there is a next page
            limit=limit + 1,
            before_id=cursor or None,
        )
        page = found[:limit]
        next_cursor = page[-1].id if len(found) > limit else None
        items = [await views.instance(i, with_tasks=False) for i in page]
        return JSONResponse({"items": items, "nextCursor": next_cursor})

    @router.get(
        "/{instance_id}",
        response_model=InstanceOut,
        summary="Get an instance with its tasks, attempts and traces",
        responses=errors_for(404),
    )
    async def get_instance(instance_id: str) -> JSONResponse:
        return JSONResponse(await views.instance(await engine.get_instance(instance_id)))

    async def command(kind: str, instance_id: str, ids: list[str] | None,
                      wait: float | None, body: BaseModel | None = None) -> JSONResponse:
        inst = await _run_command(engine, kind, instance_id, ids, wait, body)
        return JSONResponse(await views.instance(inst))

    @router.post("/{instance_id}/retry", response_model=InstanceOut, summary="Retry",
                 description=_COMMAND_DOC["retry"], responses=command_errors)
    async def retry(instance_id: str, body: CommandRequest | None = None) -> JSONResponse:
        body = body or CommandRequest.model_validate({})
        return await command("retry", instance_id, body.taskIds, body.wait)

    @router.post("/{instance_id}/cancel", response_model=InstanceOut, summary="Cancel",
                 description=_COMMAND_DOC["cancel"], responses=command_errors)
    async def cancel(instance_id: str, body: CommandRequest | None = None) -> JSONResponse:
        body = body or CommandRequest.model_validate({})
        return await command("cancel", instance_id, body.taskIds, body.wait)

    @router.post("/{instance_id}/continue", response_model=InstanceOut, summary="Continue",
                 description=_COMMAND_DOC["continue"], responses=command_errors)
    async def continue_(instance_id: str, body: ContinueRequest | None = None) -> JSONResponse:
        body = body or ContinueRequest.model_validate({})
        return await command("continue", instance_id, body.taskIds, body.wait, body)

    @router.post("/{instance_id}/reject", response_model=InstanceOut, summary="Reject",
                 description=_COMMAND_DOC["reject"], responses=command_errors)
    async def reject(instance_id: str, body: RejectRequest | None = None) -> JSONResponse:
        body = body or RejectRequest.model_validate({})
        return await command("reject", instance_id, body.taskIds, body.wait, body)

    @router.post("/{instance_id}/pause", response_model=InstanceOut, summary="Pause",
                 description=_COMMAND_DOC["pause"], responses=command_errors)
    async def pause(instance_id: str, body: WaitRequest | None = None) -> JSONResponse:
        return await command("pause", instance_id, None, _wait(body))

    @router.post("/{instance_id}/resume", response_model=InstanceOut, summary="Resume",
                 description=_COMMAND_DOC["resume"], responses=command_errors)
    async def resume(instance_id: str, body: WaitRequest | None = None) -> JSONResponse:
        return await command("resume", instance_id, None, _wait(body))

    # -- one task ---------------------------------------------------------------------------------
    @router.get(
        "/{instance_id}/tasks/{task_id:path}",
        response_model=TaskOut,
        summary="Get one task of an instance",
        responses=errors_for(404),
    )
    async def get_task(instance_id: str, task_id: str) -> JSONResponse:
        inst = await engine.get_instance(instance_id)
        return JSONResponse(await views.task(inst, task_id))

    async def task_command(kind: str, instance_id: str, task_id: str,
                           body: WaitRequest | None) -> JSONResponse:
        # an unknown task is a 404 whichever process drives the instance
        find_task(await engine.get_instance(instance_id), task_id)
        inst = await _run_command(engine, kind, instance_id, [task_id],
                                  _wait(body), body)
        return JSONResponse(await views.task(inst, task_id))

    task_doc: dict[str, Any] = {"response_model": TaskOut, "responses": command_errors}

    @router.post("/{instance_id}/tasks/{task_id:path}/retry", summary="Retry one task", **task_doc)
    async def retry_task(instance_id: str, task_id: str,
                         body: WaitRequest | None = None) -> JSONResponse:
        return await task_command("retry", instance_id, task_id, body)

    @router.post("/{instance_id}/tasks/{task_id:path}/cancel", summary="Cancel one task",
                 **task_doc)
    async def cancel_task(instance_id: str, task_id: str,
                          body: WaitRequest | None = None) -> JSONResponse:
        return await task_command("cancel", instance_id, task_id, body)

    @router.post("/{instance_id}/tasks/{task_id:path}/continue", summary="Continue one task",
                 **task_doc)
    async def continue_task(instance_id: str, task_id: str,
                            body: TaskContinueRequest | None = None) -> JSONResponse:
        return await task_command("continue", instance_id, task_id,
                                  body or TaskContinueRequest.model_validate({}))

    @router.post("/{instance_id}/tasks/{task_id:path}/reject", summary="Reject one approval task",
                 **task_doc)
    async def reject_task(instance_id: str, task_id: str,
                          body: TaskRejectRequest | None = None) -> JSONResponse:
        return await task_command("reject", instance_id, task_id,
                                  body or TaskRejectRequest.model_validate({}))

    # the same task routes under the resource name DESIGN §6 uses: a task instance is
    # addressed by its instance id and its task id
    tasks = APIRouter(prefix="/task-instances", tags=["task-instances"])
    # a task id may hold a '/' (any text Fastflow accepts): it is the rest of the path
    tasks.add_api_route("/{instance_id}/{task_id:path}", get_task, methods=["GET"],
                        response_model=TaskOut, summary="Get one task instance",
                        responses=errors_for(404))
    for verb, handler in (("retry", retry_task), ("cancel", cancel_task),
                          ("continue", continue_task), ("reject", reject_task)):
        tasks.add_api_route(f"/{{instance_id}}/{{task_id:path}}/{verb}", handler, methods=["POST"],
                            summary=f"{verb.capitalize()} one task instance", **task_doc)
    combined = APIRouter()
    combined.include_router(router)
    combined.include_router(tasks)
    return combined
