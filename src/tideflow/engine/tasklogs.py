"""Task logs on the writing side: each attempt's lines collected in memory and written to the
database in batches.

An :class:`AttemptLog` takes lines from any thread (a sync action logs from the executor's
threads): it masks secret values, keeps the attempt under its size cap (a marker line says
where the log was cut) and stamps each line. The :class:`TaskLogSink` writes what every
attempt collected in one transaction every ``task_log_flush_secs`` (sooner when much is
waiting): a task's result never waits for its log, and a chain of quick tasks costs one log
write per interval, not one per task. A read on the node that writes (``engine.task_logs``)
flushes first, so it sees every line written so far; other nodes see a line within about one
interval. While the database is unreachable the batches are kept and retried, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..actions.tasklog import TaskLogger
from ..errors import InputError, StoreError, TideflowError
from ..limits import clean_text, show_bytes
from ..states import TaskStatus
from ..store.base import Store
from ..store.records import LogChunk, LogLineTuple
from ..templates import mask_secrets

if TYPE_CHECKING:
    from ..store.records import TaskRecord
    from .runner import InstanceRunner

log = logging.getLogger("tideflow.engine")

#: the stream of the engine's own lines (started, retried, timed out, interrupted)
ENGINE_STREAM = "engine"
#: one line longer than this is cut (a program printing megabytes without a newline)
MAX_LINE_BYTES = 64 * 1024
#: a chunk row holds at most this much text, well under any database's statement limit
CHUNK_BYTES = 512 * 1024
#: waiting lines that make the sink write before its interval is up
EAGER_BYTES = 256 * 1024
#: times a row is refused while other rows are written beside it, before the lines the
#: database refuses in it are dropped; alone (nothing else written, the database answering)
REFUSALS_TO_DROP = 3
REFUSALS_TO_DROP_ALONE = 6
#: writes spent finding the refused lines of a row, at most (halving it)
MAX_SALVAGE_WRITES = 64
#: lines held through a database outage, at most; the oldest are dropped beyond it
MAX_UNSENT_BYTES = 64 * 1024 * 1024


class AttemptLog:
    """The log of one attempt, as it is written."""

    __slots__ = ("instance_id", "task_id", "attempt", "_sink", "_secrets", "_lock", "_pending",
                 "_pending_bytes", "size", "truncated", "closed")

    def __init__(self, sink: TaskLogSink, instance_id: str, task_id: str, attempt: int,
                 secrets: Sequence[str]) -> None:
        self.instance_id = instance_id
        self.task_id = task_id
        self.attempt = attempt
        self._sink = sink
        self._secrets = tuple(secrets)
        self._lock = threading.Lock()
        self._pending: list[LogLineTuple] = []
        self._pending_bytes = 0
        #: bytes written to this attempt's log so far (the cap's count)
        self.size = 0
        self.truncated = False
        self.closed = False

    def logger(self) -> TaskLogger:
        """``ctx.log`` of the attempt: its lines are dropped once the attempt is over (an
        abandoned thread's late line)."""
        # with task logs off, the action's lines go to the standard logger ``tideflow.task``
        return TaskLogger(self.write if self._sink.enabled else None)

    def write(self, stream: str, text: str, level: str | None = None) -> None:
        """Add a line; dropped when the log is at its cap, and the action's once the attempt
        is over (an abandoned thread's late line). Engine lines still go in: they say how the
        attempt ended."""
        sink = self._sink
        if not sink.enabled or (self.closed and stream != ENGINE_STREAM):
            return
        if self._secrets:
            text = mask_secrets(text, self._secrets)
        # the common line (ASCII, short) is taken as it is: this runs per line. (A NUL is
        # fine: the stored JSON escapes it.)
        if text.isascii() and len(text) <= MAX_LINE_BYTES:
            size = len(text) + 40  # time, stream: what a line weighs besides its text
        else:
            text = clean_text(text, len(text) * 4)  # NULs, lone surrogates: not cut here
            raw = text.encode("utf-8")
            if len(raw) > MAX_LINE_BYTES:
                # split as a shell line that long is: every part kept, in order
                for part in _split_line(raw):
                    self.write(stream, part, level)
                return
            size = len(raw) + 40
        entry = (time.time_ns() // 1000, stream, text, level)
        with self._lock:
            if self.size + size > sink.max_bytes and stream != ENGINE_STREAM:
                if self.truncated:
                    return
                self.truncated = True
                entry = (entry[0], ENGINE_STREAM,
                         f"log truncated: this attempt's log reached its limit of "
                         f"{show_bytes(sink.max_bytes)} (task_log_max_bytes); later lines "
                         "are not kept", None)
            self.size += size
            pending = self._pending
            pending.append(entry)
            self._pending_bytes += size
            first = len(pending) == 1
        if first:
            sink.mark(self, size)
        else:
            sink._waiting += size  # a rough count: a lost update only delays an eager flush
            if sink._waiting > EAGER_BYTES:
                sink.grow(0)

    def engine(self, text: str) -> None:
        """A line of the engine's own about this attempt."""
        self.write(ENGINE_STREAM, text)

    def take(self) -> tuple[list[LogLineTuple], int]:
        with self._lock:
            lines, size = self._pending, self._pending_bytes
            self._pending, self._pending_bytes = [], 0
        return lines, size

    def close(self) -> None:
        """The attempt is over: the action's late lines are dropped; what it wrote is still
        flushed."""
        self.closed = True


class TaskLogSink:
    """Collects the attempts' logs of one engine and writes them in batches."""

    def __init__(self, store: Store, *, enabled: bool = True,
                 max_bytes: int = 10 * 1024 * 1024, flush_secs: float = 0.2) -> None:
        if max_bytes < 1024:
            raise InputError(f"task_log_max_bytes must be at least 1024, not {max_bytes}")
        if not 0 < flush_secs <= 60:
            raise InputError(
                f"task_log_flush_secs must be more than 0 and at most 60, not {flush_secs}")
        self.store = store
        self.enabled = enabled
        self.max_bytes = max_bytes
        self.flush_secs = flush_secs
        self._lock = threading.Lock()
        self._dirty: dict[int, AttemptLog] = {}
        self._waiting = 0
        #: chunks taken but not yet written (the database failed): written first next time
        self._unsent: list[LogChunk] = []
        self._unsent_bytes = 0
        self._flushing = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._failures = 0
        #: rows the database refused on their own, with how many times, by id
        self._refused: dict[int, tuple[LogChunk, int]] = {}
        #: batches written (for the benchmark)
        self.flushes = 0

    def attempt(self, instance_id: str, task_id: str, attempt: int,
                secrets: Sequence[str] = ()) -> AttemptLog:
        return AttemptLog(self, instance_id, task_id, attempt, secrets)

    # -- from writers (any thread) -------------------------------------------------------------
    def mark(self, alog: AttemptLog, size: int) -> None:
        with self._lock:
            self._dirty[id(alog)] = alog
        self.grow(size)

    def grow(self, size: int) -> None:
        self._waiting += size  # a rough count: a lost update only delays an eager flush
        if self._waiting > EAGER_BYTES and self._loop is not None:
            if threading.get_ident() == self._loop_thread:
                self._wake.set()
            else:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    self._loop.call_soon_threadsafe(self._wake.set)

    # -- the writer loop ---------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self.enabled:
            self._task = self._loop.create_task(self._run(), name="tideflow-task-logs")

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._delay())
            self._wake.clear()
            try:
                await self.flush()
            except StoreError:
                continue  # kept, retried after the back-off

    def _delay(self) -> float:
        if not self._failures:
            return self.flush_secs
        return min(5.0, self.flush_secs * 2.0 ** min(self._failures, 6))

    def pending(self) -> bool:
        """Lines are waiting, or being written now."""
        return bool(self._dirty or self._unsent or self._flushing.locked())

    async def flush(self) -> None:
        """Write every line collected so far (waiting for a write in flight first).
        StoreError when the database fails (the lines are kept for the next try)."""
        if not self.pending():
            return
        async with self._flushing:
            if not (self._dirty or self._unsent):
                return
            with self._lock:
                dirty, self._dirty = list(self._dirty.values()), {}
                self._waiting = 0
            chunks = self._unsent
            for alog in dirty:
                lines, size = alog.take()
                if lines:
                    chunks.extend(_chunks(alog, lines, size))
                self._unsent_bytes += size
            if not chunks:
                return
            self._unsent = []
            left, error = await self._write(chunks)
            if left:
                # kept for the next round: everything in an outage, else the refused rows
                if len(left) != len(chunks):
                    self._unsent_bytes = sum(len(x[2]) + 40 for c in left for x in c.lines)
                self._keep(left)
            else:
                self._unsent_bytes = 0
            if error is not None:
                self._failures += 1
                if self._failures == 1:
                    log.warning("task log writes failing, kept in memory and retried: %s",
                                error)
                raise error
            if self._failures:
                log.warning("task log writes resumed after %d failed attempt(s)",
                            self._failures)
            self._failures = 0
            self.flushes += 1

    async def _write(self, chunks: list[LogChunk]) -> tuple[list[LogChunk], StoreError | None]:
        """Write ``chunks``; what is left to retry, and the error when nothing could be
        written (the database is failing, not only some of its rows).

        A batch the database fails is written again row by row, so that one row it will
        not take (a trigger, a constraint, an error the store cannot classify) does not hold
        back every later line of the node: the others are written, and a row refused
        :data:`REFUSALS_TO_DROP` times while other rows are written beside it is dropped, a
        marker line in its place."""
        try:
            await self.store.write_task_logs(chunks)
            return [], None
        except StoreError as exc:
            if not await self._answers():
                return chunks, exc  # an outage: keep everything, in order
        except TideflowError as exc:
            log.warning("task log write refused (%s); writing row by row", exc)
        left: list[LogChunk] = []
        error: StoreError | None = None
        wrote = False
        for c in chunks:
            try:
                await self.store.write_task_logs([c])
                wrote = True
            except StoreError as exc:
                left.append(c)
                error = exc
            except TideflowError as exc:
                # the instance was deleted meanwhile, or the database will never take these
                log.warning("dropped %d task log line(s) of instance %s: %s",
                            len(c.lines), c.instance_id, exc)
        if not left:
            return [], None
        # rows refused while others are written are judged sooner than rows refused alone
        # (which may be an outage of writes only: a table locked, a disk full)
        if not wrote and not await self._answers():
            return left, error
        need = REFUSALS_TO_DROP if wrote else REFUSALS_TO_DROP_ALONE
        kept = []
        counts, self._refused = self._refused, {}
        for c in left:
            key = id(c)
            tries = counts.get(key, (c, 0))[1] + 1
            if tries < need or not await self._salvage(c, error, alone=not wrote):
                self._refused[key] = (c, min(tries, need - 1))
                kept.append(c)
        return kept, (error if kept and not wrote else None)

    async def _answers(self) -> bool:
        """Whether the database answers at all (a failed write is then about its rows)."""
        try:
            await self.store.check_ready()
        except TideflowError:
            return False
        return True

    async def _salvage(self, chunk: LogChunk, error: StoreError | None, *, alone: bool
                       ) -> bool:
        """Write what the database takes of ``chunk``, which it keeps refusing: halves of
        it, down to single lines (at most :data:`MAX_SALVAGE_WRITES` writes); each part
        still refused is dropped, a marker line in its place (without its text, which may
        be what is refused). False, nothing written or dropped, when the row was refused
        ``alone`` and not one of its lines is taken either: writes fail whatever they hold
        (a disk full), and the row waits for the database to take writes again."""
        parts = _halves(chunk)
        dropped = writes = taken = 0
        while parts:
            part = parts.pop(0)
            writes += 1
            try:
                if writes > MAX_SALVAGE_WRITES:
                    raise TideflowError("too many parts refused")
                await self.store.write_task_logs([part])
                taken += 1
                continue
            except TideflowError:
                if len(part.lines) > 1 and writes <= MAX_SALVAGE_WRITES:
                    parts[:0] = _halves(part)
                    continue
            if alone and not taken:
                return False
            dropped += len(part.lines)
            marker = LogChunk(part.instance_id, part.task_id, part.attempt, [(
                part.lines[0][0], ENGINE_STREAM,
                f"{len(part.lines)} log line(s) dropped here: the database refused to store "
                "them (the node's log says why)", None)])
            with contextlib.suppress(TideflowError):
                await self.store.write_task_logs([marker])
        log.warning("dropped %d task log line(s) of instance %s, task %s, attempt %d: the "
                    "database kept refusing them: %s", dropped, chunk.instance_id,
                    chunk.task_id, chunk.attempt, error)
        return True

    def _keep(self, chunks: list[LogChunk]) -> None:
        self._unsent = chunks + self._unsent
        while self._unsent_bytes > MAX_UNSENT_BYTES and len(self._unsent) > 1:
            gone = self._unsent.pop(0)
            self._unsent_bytes -= sum(len(x[2]) + 40 for x in gone.lines)
            log.warning("dropped %d task log line(s) of instance %s held through a database "
                        "outage (over %s held)", len(gone.lines), gone.instance_id,
                        show_bytes(MAX_UNSENT_BYTES))

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is left (trying for up to ``timeout`` seconds), then stop."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        until = time.monotonic() + timeout
        while self.pending():
            try:
                await self.flush()
            except StoreError as exc:
                if time.monotonic() >= until:
                    log.error("gave up writing task logs at close: %s", exc)
                    return
                await asyncio.sleep(0.2)


def _chunks(alog: AttemptLog, lines: list[LogLineTuple], size: int) -> list[LogChunk]:
    """``lines`` (``size`` bytes) cut into rows of at most CHUNK_BYTES of text."""
    if size < CHUNK_BYTES:
        return [LogChunk(alog.instance_id, alog.task_id, alog.attempt, lines)]
    out: list[LogChunk] = []
    start, size = 0, 0
    for i, line in enumerate(lines):
        size += len(line[2]) + 40
        if size >= CHUNK_BYTES:
            out.append(LogChunk(alog.instance_id, alog.task_id, alog.attempt,
                                lines[start:i + 1]))
            start, size = i + 1, 0
    if start < len(lines):
        out.append(LogChunk(alog.instance_id, alog.task_id, alog.attempt, lines[start:]))
    return out


def _split_line(raw: bytes) -> list[str]:
    """A line's UTF-8 ``raw`` text in parts of at most MAX_LINE_BYTES, each ending on a
    whole character."""
    parts = []
    while raw:
        cut = min(len(raw), MAX_LINE_BYTES)
        while cut < len(raw) and (raw[cut] & 0xC0) == 0x80:
            cut -= 1  # not inside a character
        parts.append(raw[:cut].decode("utf-8"))
        raw = raw[cut:]
    return parts


def _halves(chunk: LogChunk) -> list[LogChunk]:
    mid = len(chunk.lines) // 2
    return [LogChunk(chunk.instance_id, chunk.task_id, chunk.attempt, part)
            for part in (chunk.lines[:mid], chunk.lines[mid:]) if part]


def open_attempt_log(runner: InstanceRunner, task: TaskRecord) -> AttemptLog:
    """The log of ``task``'s current attempt in ``runner``'s instance (secrets masked)."""
    sink = runner.rt.task_logs
    if sink is None:  # pragma: no cover - every started engine has one
        raise InputError("the engine is not started")
    return sink.attempt(task.instance_id, task.task_id, task.attempts, runner.secret_values)


_ENDED = {TaskStatus.SUCCESS: "succeeded", TaskStatus.FAILED: "failed",
          TaskStatus.CANCELED: "canceled", TaskStatus.BLOCKED: "blocked"}


def ended_line(attempt: int, status: TaskStatus, reason: str | None) -> str:
    """The engine's line at the end of an attempt."""
    verb = _ENDED.get(status) or status.value
    return f"attempt {attempt} {verb}: {reason}" if reason else f"attempt {attempt} {verb}"


async def settle_logs(sink: TaskLogSink | None) -> None:
    """Write the lines collected so far, before an instance's end is committed: whoever sees
    it ended then finds its whole log. A database failing log writes does not hold the end
    up (the lines are kept and written later)."""
    if sink is not None and sink.pending():
        with contextlib.suppress(StoreError):
            await sink.flush()
