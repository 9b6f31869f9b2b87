"""Task logs on the reading side: the Engine's ``task_logs`` (a page of lines after a cursor,
or the last lines) and ``follow_task_logs`` (lines as they are written, from whichever node
writes them). The CLI and the HTTP API are adapters over these two."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import InputError, NotFoundError, StoreError
from ..limits import MAX_INT32, MAX_INT64
from ..states import InstanceStatus, TaskStatus
from ..store.records import InstanceRecord, LogChunk

if TYPE_CHECKING:
    from ..store.base import Store
    from .runner import InstanceRunner
    from .runtime import Runtime

#: lines a page holds by default, and at most
DEFAULT_PAGE_LINES = 10_000
MAX_PAGE_LINES = 100_000
#: how often a follower looks for new lines
FOLLOW_POLL_SECS = 0.25
#: after its task ended, a follower still waits this long for lines the writer had not
#: flushed yet (it writes every ``task_log_flush_secs``, 0.2 s by default)
FOLLOW_GRACE_SECS = 1.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_TASK_ACTIVE = frozenset({TaskStatus.INIT, TaskStatus.RUNNING, TaskStatus.ENDING,
                          TaskStatus.RETRYING, TaskStatus.CONTINUE})


@dataclass(frozen=True)
class TaskLogLine:
    """One line of a task's log."""

    #: the id of the chunk the line was stored in: pass it as ``after`` to read on
    cursor: int
    task_id: str
    attempt: int
    #: ISO 8601 UTC
    time: str
    #: ``stdout``, ``stderr`` (shell), ``log`` (``ctx.log``) or ``engine``
    stream: str
    text: str
    #: the level of a ``ctx.log`` line (``INFO``...), else None
    level: str | None = None
    #: the line's place in its chunk (from 0): with ``cursor``, it names the line
    index: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "taskId": self.task_id, "attempt": self.attempt,
                "time": self.time, "stream": self.stream, "level": self.level,
                "text": self.text}


@dataclass(frozen=True)
class TaskLogPage:
    lines: list[TaskLogLine]
    #: where to read on from (the last chunk read; the ``after`` given when none)
    cursor: int | None
    #: more lines were there than the page holds
    more: bool

    def to_json(self) -> dict[str, Any]:
        return {"lines": [x.to_json() for x in self.lines], "cursor": self.cursor,
                "more": self.more}


def _iso(micros: int) -> str:
    return (_EPOCH + timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")


def _explode(chunks: list[LogChunk]) -> list[TaskLogLine]:
    out = []
    for c in chunks:
        cursor = c.id or 0
        for i, (t, stream, text, level) in enumerate(c.lines):
            out.append(TaskLogLine(cursor, c.task_id, c.attempt, _iso(t), stream, text, level,
                                   i))
    return out


class LogVerbs:
    """The task-log verbs of :class:`~tideflow.engine.engine.Engine`."""

    if TYPE_CHECKING:
        store: Store
        _runners: dict[str, InstanceRunner]

        def _require_rt(self) -> Runtime: ...
        async def get_instance(self, instance_id: str) -> InstanceRecord: ...

    async def task_logs(
        self,
        instance_id: str,
        task_id: str | None = None,
        *,
        attempt: int | None = None,
        after: int | None = None,
        limit: int = DEFAULT_PAGE_LINES,
        tail: int | None = None,
    ) -> TaskLogPage:
        """A page of the log of an instance (every task's, in the order written), of one
        task, or of one attempt of it: the lines after the cursor ``after``, at least
        ``limit`` of them when there are (whole chunks: a page may hold a few more); with
        ``tail`` the last ``tail`` lines instead. NotFoundError for an unknown instance or
        task, InputError for a bad argument."""
        await self._check_log_target(instance_id, task_id, attempt)
        return await self._log_page(instance_id, task_id, attempt, after, limit, tail)

    async def _log_page(self, instance_id: str, task_id: str | None, attempt: int | None,
                        after: int | None, limit: int, tail: int | None) -> TaskLogPage:
        if not 1 <= limit <= MAX_PAGE_LINES:
            raise InputError(f"limit must be between 1 and {MAX_PAGE_LINES}, not {limit}")
        check_log_cursor(after)
        await self._flush_local_logs()
        if tail is not None:
            if not 1 <= tail <= MAX_PAGE_LINES:
                raise InputError(f"tail must be between 1 and {MAX_PAGE_LINES}, not {tail}")
            # the newest chunks, more of them until they hold enough lines
            n = 20
            while True:
                chunks = await self.store.read_task_logs(instance_id, task_id, attempt=attempt,
                                                         after=after, limit=n, newest=True)
                if (sum(len(c.lines) for c in chunks) >= tail or len(chunks) < n
                        or n >= 20_000):
                    break
                n *= 10
            lines = _explode(chunks)[-tail:]
            last = chunks[-1].id if chunks else after
            return TaskLogPage(lines, last, False)
        chunks = []
        count = 0
        cursor = after
        more = False
        while count < limit:
            got = await self.store.read_task_logs(instance_id, task_id, attempt=attempt,
                                                  after=cursor, limit=100)
            for c in got:
                if count >= limit:
                    more = True
                    break
                chunks.append(c)
                count += len(c.lines)
                cursor = c.id
            if len(got) < 100:
                break
        else:
            more = more or bool(await self.store.read_task_logs(
                instance_id, task_id, attempt=attempt, after=cursor, limit=1))
        return TaskLogPage(_explode(chunks), cursor, more)

    async def follow_task_logs(
        self,
        instance_id: str,
        task_id: str | None = None,
        *,
        attempt: int | None = None,
        after: int | None = None,
        poll_secs: float = FOLLOW_POLL_SECS,
    ) -> AsyncIterator[TaskLogLine]:
        """The log's lines as they are written, whichever node runs the task, until the
        task (or attempt; without a task: the instance) is over — ended, or waiting for a
        person — and its last lines are read."""
        await self._check_log_target(instance_id, task_id, attempt)
        cursor = after
        #: when the end was seen, and how long lines may still come after it
        ended_at: float | None = None
        grace = 0.0
        while True:
            if ended_at is None:
                ended = await self._log_ended(instance_id, task_id, attempt)
                if ended is not None:
                    ended_at, grace = time.monotonic(), ended
            page = await self._log_page(instance_id, task_id, attempt, cursor,
                                        DEFAULT_PAGE_LINES, None)
            for line in page.lines:
                yield line
            cursor = page.cursor
            if page.more:
                continue
            if ended_at is not None and (page.lines == [] and
                                         time.monotonic() - ended_at >= grace):
                return
            await asyncio.sleep(poll_secs)

    async def _check_log_target(self, instance_id: str, task_id: str | None,
                                attempt: int | None) -> InstanceRecord:
        self._require_rt()
        check_log_attempt(attempt)
        inst = await self.get_instance(instance_id)
        if task_id is not None and not any(t.task_id == task_id for t in inst.tasks):
            raise NotFoundError(f"instance {instance_id} has no task '{task_id}'")
        return inst

    async def _log_ended(self, instance_id: str, task_id: str | None,
                         attempt: int | None) -> float | None:
        """None while lines may still come; else how long to wait for lines written before
        the end that are not stored yet: none once the instance is final (its lines are
        written before its end is), a moment after a task's end."""
        inst = await self.get_instance(instance_id)
        if inst.status.is_final:
            return 0.0
        if inst.status in (InstanceStatus.BLOCKED, InstanceStatus.PAUSED):
            return FOLLOW_GRACE_SECS
        if task_id is None:
            return None
        task = next(t for t in inst.tasks if t.task_id == task_id)
        if attempt is not None and attempt < task.attempts:
            return FOLLOW_GRACE_SECS
        return None if task.status in _TASK_ACTIVE else FOLLOW_GRACE_SECS

    async def _flush_local_logs(self) -> None:
        """Lines this node collected are written first, so a read here sees them all."""
        sink = self._require_rt().task_logs
        if sink is not None and sink.pending():
            try:
                await sink.flush()
            except StoreError:
                pass  # the read itself says whether the database answers


def check_log_cursor(after: int | None) -> None:
    """InputError unless ``after`` is a cursor a page may have given (a 64-bit row id)."""
    if after is not None and not 0 <= after <= MAX_INT64:
        raise InputError(f"after must be a cursor from an earlier page (0 to {MAX_INT64}), "
                         f"not {after}")


def check_log_attempt(attempt: int | None) -> None:
    """InputError unless ``attempt`` is an attempt number an attempt may have."""
    if attempt is not None and not 1 <= attempt <= MAX_INT32:
        raise InputError(f"attempt must be between 1 and {MAX_INT32}, not {attempt}")
