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
from ...engine.logreads import MAX_PAGE_LINES, TaskLogLine, check_log_attempt, check_log_cursor
from ...errors import InputError
from ...limits import MAX_INT32, MAX_INT64
from ...views import find_task
from . import errors_for

#: a comment line sent while no line comes, so that proxies keep the stream open
KEEPALIVE_SECS = 15.0

_FOLLOW_DOC = (
    "A page of the log (`lines`, `cursor`, `more`): pass `cursor` as `after` for the next one. "
    "With `follow=true` (or `Accept: text/event-stream`) the lines come as Server-Sent Events "
    "as they are written, one `data:` JSON line each whose `id` names the line (`CURSOR:INDEX`, "
    "the line's chunk and its place in it: a reconnect with `Last-Event-ID` reads on from the "
    "line after it), then an `end` event once the task (without a task: the instance) is over. "
    "A page's `cursor` names a whole chunk: `after` reads on from the next chunk."
)


# the query both routes take
_AFTER = Query(None, ge=0, le=MAX_INT64, description="`cursor` of the previous page.")
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
        resume = _last_event(last_event_id)
        if resume is not None:
            # read the chunk of the last line seen again, from the line after it
            after = resume[0] - 1 if resume[0] > 0 else None
        check_log_cursor(after)  # before the 200: a bad cursor is a 400, not an empty stream
        check_log_attempt(attempt)
        if tail is not None:
            page = await engine.task_logs(instance_id, task_id, attempt=attempt, after=after,
                                          tail=tail)
            first, after = page.lines, page.cursor
        else:
            first = []
        lines = engine.follow_task_logs(instance_id, task_id, attempt=attempt, after=after)
        return StreamingResponse(_events(first, lines, resume), media_type="text/event-stream",
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
        attempt: int | None = Query(None, ge=1, le=MAX_INT32,
                                    description="Only this attempt."),
        after: int | None = _AFTER, limit: int = _LIMIT, tail: int | None = _TAIL,
        follow: bool = _FOLLOW, last_event_id: str | None = _LAST_ID,
    ) -> JSONResponse | StreamingResponse:
        return await serve(request, instance_id, task_id, attempt, after, limit, tail, follow,
                           last_event_id)

    return router


def _last_event(value: str | None) -> tuple[int, int] | None:
    """The line a ``Last-Event-ID`` names, as (cursor, index); a bare cursor (an id given
    by an older server) names its chunk's last line. None for an id that is not one."""
    if not value:
        return None
    cursor, _, index = value.strip().partition(":")
    if not cursor.isdigit() or (index and not index.isdigit()):
        return None
    if len(cursor) > 19 or len(index) > 19:
        raise InputError(f"Last-Event-ID {value[:40]!r} is not an id this server sent")
    return int(cursor), int(index) if index else MAX_INT64


async def _events(first: list[TaskLogLine], lines: AsyncIterator[TaskLogLine],
                  resume: tuple[int, int] | None = None) -> AsyncIterator[str]:
    for line in first:
        yield _event(line)
    if resume is not None:
        lines = _after_line(lines, *resume)
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


async def _after_line(lines: AsyncIterator[TaskLogLine], cursor: int, index: int
                      ) -> AsyncIterator[TaskLogLine]:
    """``lines`` without those up to line ``index`` of chunk ``cursor`` (seen already)."""
    async for line in lines:
        if line.cursor < cursor or (line.cursor == cursor and line.index <= index):
            continue
        yield line


def _event(line: TaskLogLine) -> str:
    data = line.to_json()
    return (f"id: {line.cursor}:{line.index}\n"
            f"data: {json.dumps(data, ensure_ascii=False)}\n\n")
