"""Size limits on what the engine stores, checked before anything is written.

A database refuses a value over its own limit (MariaDB's ``max_allowed_packet``, SQLite's
``SQLITE_MAX_LENGTH``) every time it is offered, so an oversized value must be caught before the
write: the task that produced it fails with a reason naming the limit, instead of a write being
retried forever. Every value a task produces goes through :class:`Limits`: share-data values
(one each, and the instance's whole share data), task outputs, params as rendered, run vars.
Traces are cut rather than refused, and reasons bounded: they describe a failure and must
never cause one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, MutableSequence
from dataclasses import dataclass
from typing import Any

from .errors import InputError, LimitError

KIB = 1024
MIB = 1024 * KIB

#: defaults of the settings of the same names (EngineSettings)
DEFAULT_MAX_VALUE_BYTES = 1 * MIB
DEFAULT_MAX_SHARE_DATA_BYTES = 4 * MIB
DEFAULT_MAX_TRACE_BYTES = 16 * KIB
#: the largest values of the database's integer columns: a number given for one of them (an
#: attempt, a version; a cursor, a row id) beyond these is bad input, not a database error
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
#: a reason (task or instance) is cut to this: it is shown in lists and logs
MAX_REASON_BYTES = 16 * KIB


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (a lone UTF-16 surrogate, which JSON's
    ``"\\ud800"`` gives, cannot: no database, log or response could hold it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def find_text(value: Any, bad: Callable[[str], bool], where: str = "") -> str | None:
    """The path (``a.b[2]``) of the first text in ``value`` — a key or a value, at any depth
    of its mappings and lists — for which ``bad`` is true; None when there is none."""
    todo: list[tuple[str, Any]] = [(where, value)]
    while todo:
        path, item = todo.pop()
        if isinstance(item, str):
            if bad(item):
                return path or "the value"
        elif isinstance(item, dict):
            for key, sub in item.items():
                name = key if isinstance(key, str) else str(key)
                if bad(name):
                    return f"{path}.(a key)" if path else "a key"
                todo.append((f"{path}.{name}" if path else name, sub))
        elif isinstance(item, list | tuple):
            todo.extend((f"{path}[{i}]", sub) for i, sub in enumerate(item))
    return None


def text_bytes(text: str) -> int:
    """The size of ``text`` in UTF-8, as a database stores it."""
    if text.isascii():  # O(1) in CPython, and the common case
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def json_bytes(value: Any) -> int:
    """The size of ``value`` written as JSON text (strings as they are)."""
    if isinstance(value, str):
        return text_bytes(value)
    return len(json.dumps(value, separators=(",", ":"), default=str))


def show_bytes(size: int) -> str:
    """``1 MiB``, ``24.0 MiB``, ``512 bytes``: a size as a person reads it."""
    if size >= MIB:
        return f"{size // MIB} MiB" if size % MIB == 0 else f"{size / MIB:.1f} MiB"
    if size >= KIB:
        return f"{size // KIB} KiB" if size % KIB == 0 else f"{size / KIB:.1f} KiB"
    return f"{size} bytes"


def cut_text(text: str, max_bytes: int, marker: str = "... [cut: {n} more bytes]") -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes (a whole character at the end), with
    a marker saying how much was left out."""
    size = text_bytes(text)
    if size <= max_bytes:
        return text
    raw = text.encode("utf-8", "surrogatepass")
    tail = marker.format(n=size - max_bytes)
    keep = max(0, max_bytes - len(tail.encode()))
    return raw[:keep].decode("utf-8", "ignore") + tail


def clean_text(text: str, max_bytes: int = MAX_REASON_BYTES) -> str:
    """``text`` as every database stores it in a text column: a NUL (which PostgreSQL refuses)
    shown as ``\\x00``, a lone surrogate (which no UTF-8 column takes) as U+FFFD, cut to
    ``max_bytes``."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return cut_text(text, max_bytes)


@dataclass(frozen=True)
class Limits:
    """The size limits of one engine (from its EngineSettings)."""

    #: one share-data value, one task output, a task's params as rendered, one run var
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    #: all share-data values of one instance together
    max_share_data_bytes: int = DEFAULT_MAX_SHARE_DATA_BYTES
    #: one trace message (longer ones are cut); a task's traces together are kept under
    #: ``max_value_bytes`` by dropping the oldest
    max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES

    def __post_init__(self) -> None:
        for name in ("max_value_bytes", "max_share_data_bytes", "max_trace_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1024:
                raise InputError(f"{name} must be an integer of at least 1024 bytes, "
                                 f"not {value!r}")

    def _refuse(self, what: str, size: int, limit: int, setting: str) -> LimitError:
        return LimitError(
            f"{what} is {show_bytes(size)}, over the limit of {show_bytes(limit)} "
            f"({setting}); store large data elsewhere and keep a reference to it",
            details={"size": size, "limit": limit, "setting": setting},
        )

    def check_value(self, what: str, value: Any) -> int:
        """Raise LimitError when ``value`` (text, or anything written as JSON) is over
        ``max_value_bytes``; return its size. ``what`` names it: "share-data value 'x'"."""
        if isinstance(value, str) and len(value) * 4 <= self.max_value_bytes:
            return len(value)  # cannot be over: no need to count the bytes
        size = json_bytes(value)
        if size > self.max_value_bytes:
            raise self._refuse(what, size, self.max_value_bytes, "max_value_bytes")
        return size

    def check_share_data(self, key: str, data: dict[str, str]) -> None:
        """Check the value of ``key`` and the whole share data ``data`` it is part of."""
        self.check_value(f"share-data value '{key}'", data[key])
        total = sum(text_bytes(k) + text_bytes(v) for k, v in data.items())
        if total > self.max_share_data_bytes:
            raise self._refuse(f"the instance's share data with '{key}'", total,
                               self.max_share_data_bytes, "max_share_data_bytes")

    def check_vars(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self.check_value(f"run var '{name}'", value)

    def cut_trace(self, message: str) -> str:
        return cut_text(message, self.max_trace_bytes)

    def bound_traces(self, traces: MutableSequence[Any], count: int) -> None:
        """Drop the oldest traces beyond ``count`` of them or ``max_value_bytes`` together."""
        if len(traces) > count:
            del traces[: len(traces) - count]
        total = _sum_sizes(t.message for t in traces)
        drop = 0
        while total > self.max_value_bytes and drop < len(traces) - 1:
            total -= text_bytes(traces[drop].message)
            drop += 1
        if drop:
            del traces[:drop]


def _sum_sizes(texts: Iterable[str]) -> int:
    return sum(text_bytes(t) for t in texts)
