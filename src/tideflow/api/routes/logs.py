"""``/api/v1/dag-instances/{id}/logs`` and ``.../tasks/{task}/logs``: task logs, a page at a
time or followed live as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from ...engine.engine import Engine
from ...engine.logreads import MAX_PAGE_LINES, TaskLogLine
from ...views import find_task
from . import errors_for

#: a comment line sent while no line comes, so that proxies keep the stream open
KEEPALIVE_SECS = 15.0

_FOLLOW_DOC = (
    "A page of the log (`lines`, `cursor`, `more`): pass `cursor` as `after` for the next one. "
    "With `follow=true` (or `Accept: text/event-stream`) the lines come as Server-Sent Events "
    "as they are written, one `data:` JSON line each with the chunk's cursor as its `id` (a "
    "reconnect with `Last-Event-ID` reads on from there), then an `end` event once the task "
    "(without a task: the instance) is over."
)


# the query both routes take
_AFTER = Query(None, ge=0, description="`cursor` of the previous page.")
_LIMIT = Query(10_000, ge=1, le=MAX_PAGE_LINES,
               description="Lines a page holds (whole chunks: a few more may come).")
_TAIL = Query(None, ge=1, le=MAX_PAGE_LINES, description="Only the last N lines.")
_FOLLOW = Query(False, description="Stream lines as Server-Sent Events.")
_LAST_ID = Header(None, alias="Last-Event-ID")


class LogLineOut(BaseModel):
    cursor: int
    taskId: str
    attempt: int
    time: str
    stream: str = Field(description="stdout, stderr (shell), log (ctx.log) or engine")
    level: str | None = Field(description="the level of a ctx.log line")
    text: str


class LogPageOut(BaseModel):
    lines: list[LogLineOut]
    cursor: int | None = Field(description="Pass as `after` to read on.")
    more: bool = Field(description="More lines are stored than this page holds.")


def logs_router(engine: Engine, base: str = "/dag-instances") -> APIRouter:
    """The log routes under ``base``: ``/dag-instances`` as every instance route, and
    ``/instances`` as well, the shorter name the log routes are also known by."""
    router = APIRouter(prefix=base, tags=["task-logs"])

    async def serve(request: Request, instance_id: str, task_id: str | None,
                    attempt: int | None, after: int | None, limit: int, tail: int | None,
                    follow: bool, last_event_id: str | None) -> JSONResponse | StreamingResponse:
        inst = await engine.get_instance(instance_id)
        if task_id is not None:
            find_task(inst, task_id)  # an unknown task is a 404
        wants_stream = "text/event-stream" in request.headers.get("accept", "")
        if not (follow or wants_stream):
            page = await engine.task_logs(instance_id, task_id, attempt=attempt, after=after,
                                          limit=limit, tail=tail)
            return JSONResponse(page.to_json())
        if last_event_id and last_event_id.isdigit():
            after = int(last_event_id)
        if tail is not None:
            page = await engine.task_logs(instance_id, task_id, attempt=attempt, after=after,
                                          tail=tail)
            first, after = page.lines, page.cursor
        else:
            first = []
        lines = engine.follow_task_logs(instance_id, task_id, attempt=attempt, after=after)
        return StreamingResponse(_events(first, lines), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    common: dict[str, Any] = {"responses": errors_for(400, 404), "description": _FOLLOW_DOC,
              "response_model": LogPageOut}

    @router.get("/{instance_id}/logs", summary="Every task's log of an instance", **common)
    async def instance_logs(
        request: Request, instance_id: str, after: int | None = _AFTER, limit: int = _LIMIT,
        tail: int | None = _TAIL, follow: bool = _FOLLOW, last_event_id: str | None = _LAST_ID,
    ) -> JSONResponse | StreamingResponse:
        return await serve(request, instance_id, None, None, after, limit, tail, follow,
                           last_event_id)

    @router.get("/{instance_id}/tasks/{task_id:path}/logs", summary="One task's log",
                **common)
    async def task_logs(
        request: Request, instance_id: str, task_id: str,
        attempt: int | None = Query(None, ge=1, description="Only this attempt."),
        after: int | None = _AFTER, limit: int = _LIMIT, tail: int | None = _TAIL,
        follow: bool = _FOLLOW, last_event_id: str | None = _LAST_ID,
    ) -> JSONResponse | StreamingResponse:
        return await serve(request, instance_id, task_id, attempt, after, limit, tail, follow,
                           last_event_id)

    return router


async def _events(first: list[TaskLogLine], lines: AsyncIterator[TaskLogLine]
                  ) -> AsyncIterator[str]:
    for line in first:
        yield _event(line)
    it = aiter(lines)
    pending: asyncio.Future[TaskLogLine] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(it))
            done, _ = await asyncio.wait([pending], timeout=KEEPALIVE_SECS)
            if not done:
                yield ": keep-alive\n\n"
                continue
            try:
                line = pending.result()
            except StopAsyncIteration:
                break
            finally:
                pending = None
            yield _event(line)
        yield "event: end\ndata: {}\n\n"
    finally:
        if pending is not None:
            pending.cancel()


def _event(line: TaskLogLine) -> str:
    data = line.to_json()
    return f"id: {data['cursor']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
