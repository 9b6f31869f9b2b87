"""``tideflow ins logs ID [TASK]``: the task logs of an instance, printed or followed live."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from ..limits import MAX_INT32
from .clients import Client
from .common import TablePrefixOpt
from .connect import DbOpt, JsonOpt, ServerOpt, with_client
from .screen import log_text_lines

Json = dict[str, Any]


def format_line(line: Json) -> str:
    """``TIME TASK#ATTEMPT STREAM TEXT``: the time to the millisecond; a ``ctx.log`` line
    shows its level where a shell line shows its stream. Control characters in the text are
    escaped, and each line of a text spanning lines (a traceback) has the same prefix."""
    t = str(line.get("time") or "")
    t = t[:23] + "Z" if len(t) > 23 else t
    label = line.get("level") if line.get("stream") == "log" else line.get("stream")
    prefix = f"{t} {line.get('taskId')}#{line.get('attempt')} {label} "
    return "\n".join(log_text_lines(prefix, str(line.get("text"))))


def _emit(line: Json, as_json: bool) -> None:
    text = (json.dumps(line, ensure_ascii=False) if as_json else format_line(line))
    sys.stdout.write(text + "\n")


def logs(
    instance_id: str = typer.Argument(..., help="The instance."),
    task: str | None = typer.Argument(None, help="Only this task's log (default: every "
                                      "task's, in the order written)."),
    attempt: int | None = typer.Option(None, "--attempt", "-a", min=1, max=MAX_INT32,
                                       help="Only this attempt of the task."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing lines as they "
                                "are written, until the task (or the instance) is over."),
    tail: int | None = typer.Option(None, "--tail", "-n", min=1, max=100_000,
                                    help="Only the last N lines (then follow, with -f)."),
    server: str | None = ServerOpt,
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print an instance's task logs: shell output, the actions' ctx.log lines and the
    engine's own lines (started, retried, timed out...), one line each (with --json, one
    JSON object a line)."""

    async def go(c: Client) -> None:
        cursor: int | None = None
        if tail is not None or not follow:
            while True:
                page = await c.task_logs(instance_id, task, attempt=attempt, after=cursor,
                                         tail=tail)
                for line in page["lines"]:
                    _emit(line, as_json)
                sys.stdout.flush()
                cursor = page["cursor"]
                if tail is not None or not page["more"]:
                    break
        if follow:
            async for line in c.follow_task_logs(instance_id, task, attempt=attempt,
                                                 after=cursor):
                _emit(line, as_json)
                sys.stdout.flush()

    with_client(server, db, go, table_prefix=table_prefix)
