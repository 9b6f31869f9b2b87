"""``ctx.log``: the logger an action writes its task's log with.

It has the methods of a :class:`logging.Logger` that actions call (``debug``, ``info``,
``warning``, ``error``, ``exception``, ``critical``, ``log``, with ``%``-style args), so code
written against a standard logger takes it unchanged. Inside an engine each line goes to the
attempt's log (stored in the database, read with ``tideflow ins logs``); outside one (an action
called by a unit test) the lines go to the standard logger ``tideflow.task``.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any

#: where a line goes: (stream, text, level name or None)
LineWriter = Callable[[str, str, "str | None"], None]

#: the stream of lines written through ``ctx.log``
LOG_STREAM = "log"


class TaskLogger:
    """A :class:`logging.Logger`-compatible writer of one attempt's log."""

    def __init__(self, write: LineWriter | None = None, name: str = "tideflow.task") -> None:
        self._write = write
        self.name = name
        #: lines below this level are dropped, as with a standard logger
        self.level = logging.DEBUG
        self._fallback = logging.getLogger(name)

    def setLevel(self, level: int | str) -> None:  # noqa: N802 - the logging API's name
        self.level = logging._checkLevel(level)  # type: ignore[attr-defined]

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging API's name
        return level >= self.level

    def getEffectiveLevel(self) -> int:  # noqa: N802 - the logging API's name
        return self.level

    def log(self, level: int, msg: object, *args: Any, exc_info: Any = None,
            stack_info: bool = False, stacklevel: int = 1, extra: Any = None) -> None:
        if not self.isEnabledFor(level):
            return
        if self._write is None:
            self._fallback.log(level, msg, *args, exc_info=exc_info, stack_info=stack_info,
                               stacklevel=stacklevel + 1, extra=extra)
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError, KeyError) as exc:
            # as logging does, a bad format is reported rather than raised into the action
            text = f"{msg!r} % {args!r} (could not format: {exc})"
        if exc_info:
            text += "\n" + _exc_text(exc_info).rstrip("\n")
        self._write(LOG_STREAM, text, logging.getLevelName(level))

    def debug(self, msg: object, *args: Any, **kw: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kw)

    def info(self, msg: object, *args: Any, **kw: Any) -> None:
        write = self._write
        if kw or write is None or self.level > logging.INFO:
            self.log(logging.INFO, msg, *args, **kw)
            return
        # the common call, kept short: actions may log in a loop
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError, KeyError):
            self.log(logging.INFO, msg, *args)
            return
        write(LOG_STREAM, text, "INFO")

    def warning(self, msg: object, *args: Any, **kw: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kw)

    warn = warning

    def error(self, msg: object, *args: Any, **kw: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kw)

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kw: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info, **kw)

    def critical(self, msg: object, *args: Any, **kw: Any) -> None:
        self.log(logging.CRITICAL, msg, *args, **kw)

    fatal = critical

    def line(self, stream: str, text: str) -> None:
        """A raw line of an output stream (``stdout``, ``stderr``), as ``shell`` writes."""
        if self._write is None:
            self._fallback.debug("%s: %s", stream, text)
        else:
            self._write(stream, text, None)


def _exc_text(exc_info: Any) -> str:
    if isinstance(exc_info, BaseException):
        info: Any = (type(exc_info), exc_info, exc_info.__traceback__)
    elif isinstance(exc_info, tuple):
        info = exc_info
    else:
        info = sys.exc_info()
    if info[0] is None:
        return "NoneType: None"
    return "".join(traceback.format_exception(*info))
