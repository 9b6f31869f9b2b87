"""Log formats of the ``tideflow`` command: text for people, JSON lines for log shippers.

``--log-format json`` (or ``TIDEFLOW_LOG_FORMAT=json``) prints one JSON object a line:
``time`` (ISO 8601 UTC), ``level``, ``logger``, ``message``, the ids a record carries (``node``,
``instance``, ``dag``, ``task``, ``attempt``: see :mod:`tideflow.engine.oplog`) as keys of
their own, and ``exception`` with the traceback when there is one. A record without a node id
gets the node of the process (:func:`set_log_node`), so every line of a node says which it is.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from .engine.oplog import IDS_ATTR
from .errors import InputError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        #: the node id given to records that carry none
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = getattr(record, IDS_ATTR, None)
        if isinstance(ids, dict):
            out.update(ids)
        if self.node and "node" not in out:
            out["node"] = self.node
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def check_format(name: str) -> str:
    value = name.strip().lower()
    if value not in FORMATS:
        raise InputError(f"log format {name!r}: use text or json")
    return value


def _json_formatters() -> list[JsonFormatter]:
    return [h.formatter for h in logging.getLogger().handlers
            if isinstance(h.formatter, JsonFormatter)]


def logs_as_json() -> bool:
    """Whether the root logger's lines are JSON (a command then says what it has to say
    through logging, not as plain text)."""
    return bool(_json_formatters())


def set_log_node(node: str) -> None:
    """Give ``node`` to the JSON lines of records that carry no node id."""
    for formatter in _json_formatters():
        formatter.node = node


def use_log_format(name: str) -> None:
    """Format every record of the root logger's handlers as ``name`` (text or json)."""
    formatter = (JsonFormatter() if check_format(name) == "json"
                 else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    for handler in root.handlers:
        handler.setFormatter(formatter)
