"""``ctx.log``: the logger an action writes its task's log with.

It is a real :class:`logging.Logger`, so everything standard works: ``%``-style args (a single
mapping too), ``exc_info`` and ``stack_info``, ``extra``, levels, ``getChild``, filters, and
handlers of one's own. Inside an engine, its handler writes each record as a line of the
attempt's log (stored in the database, read with ``tideflow ins logs``); outside one (an action
called by a unit test), records go on to the standard logger ``tideflow.task``.

The logger is not registered with :mod:`logging`'s manager: each attempt has its own, gone
with it, and ``logging.getLogger`` never hands it out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

#: where a line goes: (stream, text, level name or None)
LineWriter = Callable[[str, str, "str | None"], None]

#: the stream of lines written through ``ctx.log``
LOG_STREAM = "log"


class TaskLogHandler(logging.Handler):
    """Writes each record as one line of an attempt's log: its message, then its traceback
    and stack when it has them."""

    def __init__(self, write: LineWriter) -> None:
        super().__init__(logging.NOTSET)
        self.write = write
        self._exc = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception as exc:  # noqa: BLE001 - as logging does, reported, not raised
            text = f"{record.msg!r} % {record.args!r} (could not format: {exc})"
        if record.exc_info and record.exc_info[0] is not None:
            text += "\n" + self._exc.formatException(record.exc_info).rstrip("\n")
        elif record.exc_text:
            text += "\n" + record.exc_text.rstrip("\n")
        if record.stack_info:
            text += "\n" + record.stack_info.rstrip("\n")
        self.write(LOG_STREAM, text, record.levelname)


class TaskLogger(logging.Logger):
    """The :class:`logging.Logger` of one attempt's log."""

    def __init__(self, write: LineWriter | None = None, name: str = "tideflow.task",
                 parent: logging.Logger | None = None) -> None:
        super().__init__(name)
        self._write = write
        self._handler: TaskLogHandler | None = None
        if parent is not None:
            # a child: its records go up to its parent's handler, as in a logger tree
            self.parent = parent
        elif write is None:
            # outside an engine: the standard logger's level and handlers decide
            self.parent = logging.getLogger(name)
        else:
            self.setLevel(logging.DEBUG)  # every line is kept, as a log file would
            self.propagate = False
            self._handler = TaskLogHandler(write)
            self.addHandler(self._handler)

    def getChild(self, suffix: str) -> TaskLogger:  # noqa: N802 - the logging API's name
        """A logger named ``NAME.suffix`` writing to the same log."""
        return TaskLogger(self._write, f"{self.name}.{suffix}", parent=self)

    def info(self, msg: object, *args: Any, **kw: Any) -> None:
        write = self._write
        if (kw or write is None or self.handlers != [self._handler] or self.filters
                or self.level > logging.INFO or self.manager.disable >= logging.INFO):
            super().info(msg, *args, **kw)
            return
        # the common call, kept short (no record, no caller lookup): actions may log in a loop
        # one mapping is the args themselves (``"%(a)s", {"a": 1}``), as in a LogRecord
        one = len(args) == 1 and isinstance(args[0], Mapping) and args[0]
        fmt_args: Any = args[0] if one else args
        try:
            text = str(msg) % fmt_args if args else str(msg)
        except (TypeError, ValueError, KeyError):
            super().info(msg, *args)
            return
        write(LOG_STREAM, text, "INFO")

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging API's name
        # not cached: logging clears the caches of the loggers it manages only
        return self.manager.disable < level and level >= self.getEffectiveLevel()

    def line(self, stream: str, text: str) -> None:
        """A raw line of an output stream (``stdout``, ``stderr``), as ``shell`` writes."""
        if self._write is None:
            logging.getLogger(self.name).debug("%s: %s", stream, text)
        else:
            self._write(stream, text, None)
