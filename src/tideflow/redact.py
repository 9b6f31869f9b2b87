"""Keeping the values of secret vars out of what tideflow shows: traces, reasons, the JSON shape
of instances and DAGs, and log records.

A secret rarely reaches a message exactly as it was given: an argv is traced shell-quoted, an
error message holds a ``repr``, a URL holds it percent-encoded, a JSON body escaped. Masking
therefore looks for those forms of each value too (:func:`secret_forms`).

Log records are redacted by a log record factory installed once per process: while an
instance with secret values runs in this process (:meth:`LogRedactor.track`), every record
created — by any logger, so also ``httpx`` logging a request URL — has those values masked in
its message and its traceback text.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import shlex
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from httpx._urlparse import FRAG_SAFE, PATH_SAFE, QUERY_SAFE, USERINFO_SAFE
from httpx._urlparse import quote as _httpx_quote
from jinja2.utils import htmlsafe_json_dumps, url_quote

from .definition.vartypes import text as value_text

MASK = "***"


def secret_forms(values: Iterable[Any]) -> tuple[str, ...]:
    """Every non-empty value of ``values`` with the forms it takes when escaped for a shell
    (inside single quotes), for JSON, for a Python literal or for a URL — and when one of those
    forms is escaped once more (a quoted argv quoted again, JSON inside JSON, a URL in a JSON
    body); longest first, so that a longer form is masked whole before a shorter one inside
    it. A typed value (a number, a list...) is taken in its text form.

    A value that spans lines (a PEM key) is also masked line by line: logs are stored a line
    at a time, so the whole value never appears in one of them. Each of its lines of at least
    :data:`MIN_LINE_PIECE` characters (blanks aside) is a form of its own."""
    found: set[str] = set()
    for raw in values:
        value = raw if isinstance(raw, str) else value_text(raw)
        if not value:
            continue
        for piece in (value, *_line_pieces(value)):
            first = _escaped(piece)
            found.update(first)
            for form in first:
                found.update(_escaped(form))
    return tuple(sorted((f for f in found if f), key=lambda f: (-len(f), f)))


#: a line of a multi-line secret shorter than this is not masked on its own: masking `}` or
#: `--` everywhere would hide most of a log and guard nothing
MIN_LINE_PIECE = 4


def _line_pieces(value: str) -> list[str]:
    """The lines of a multi-line ``value`` worth masking alone (stripped of surrounding
    blanks, which a line of output may not keep)."""
    if "\n" not in value and "\r" not in value:
        return []
    pieces = (line.strip() for line in value.splitlines())
    return [p for p in pieces if len(p) >= MIN_LINE_PIECE]


def _escaped(value: str) -> set[str]:
    """``value`` and the forms each encoder that can carry it into a message gives it."""
    return {encode(value) for encode in _ENCODERS}


def _repr_forms() -> list[Callable[[str], str]]:
    def literal(value: str) -> str:
        return repr(value)[1:-1]

    # repr picks its quote from the whole string: the value inside a longer one may be
    # escaped for the other quote
    return [literal, lambda v: literal(v).replace("'", "\\'"),
            lambda v: literal(v).replace('"', '\\"')]


#: the encoders a value meets on its way into a message: the shell's quoting, JSON (the
#: engine's and Jinja's ``tojson``, which writes ' < > & as \u0027...), a Python literal,
#: percent-encoding (urllib's, Jinja's ``urlencode`` and httpx's for each part of a URL — it
#: logs the URL it requests)
_ENCODERS: list[Callable[[str], str]] = [
    lambda v: v,
    lambda v: v.replace("'", "'\"'\"'"),  # shlex.quote's way inside '...'
    shlex.quote,
    lambda v: json.dumps(v)[1:-1],
    lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
    lambda v: str(htmlsafe_json_dumps(v))[1:-1],
    *_repr_forms(),
    lambda v: quote(v, safe=""),
    quote,
    quote_plus,
    url_quote,
    lambda v: url_quote(v, for_qs=True),
    *(functools.partial(_httpx_quote, safe=safe)
      for safe in (PATH_SAFE, QUERY_SAFE, FRAG_SAFE, USERINFO_SAFE)),
]


def _pattern(forms: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted({f for f in forms if f}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


def mask_text(text: str, forms: tuple[str, ...]) -> str:
    """``text`` with every form in ``forms`` (from :func:`secret_forms`) replaced by ``***``."""
    present = sorted((f for f in forms if f and f in text), key=len, reverse=True)
    if not present:
        return text
    # longest first: the alternation masks the longest match at each position
    return re.sub("|".join(map(re.escape, present)), MASK, text)


def mask_value(value: Any, forms: tuple[str, ...]) -> Any:
    """``value`` (text, or JSON-like containers of it, keys included) with secrets masked."""
    if not forms:
        return value
    if isinstance(value, str):
        return mask_text(value, forms)
    if isinstance(value, dict):
        return {mask_value(k, forms): mask_value(v, forms) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, forms) for v in value]
    return value


class LogRedactor:
    """The secret values of the instances running in this process, masked in log records.

    Values are tracked for as long as their owner (an instance's runner) lives, so no path
    that ends a runner has to remember to forget them; a value masked a little longer than
    needed costs nothing. Reads happen in any thread (sync actions log from worker threads):
    the set of values is an immutable snapshot swapped under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[int, tuple[str, ...]] = {}
        self._ids = itertools.count()
        self._compiled: re.Pattern[str] | None = None
        self._installed = False
        self._formatter = logging.Formatter()

    def track(self, owner: object, forms: tuple[str, ...]) -> None:
        """Mask ``forms`` in log records until ``owner`` is garbage-collected."""
        if not forms:
            return
        self.install()
        key = next(self._ids)
        with self._lock:
            self._owners[key] = forms
            self._rebuild()
        weakref.finalize(owner, self._forget, key)

    def _forget(self, key: int) -> None:
        with self._lock:
            if self._owners.pop(key, None) is not None:
                self._rebuild()

    def _rebuild(self) -> None:
        self._compiled = _pattern(itertools.chain.from_iterable(self._owners.values()))

    @property
    def active(self) -> bool:
        """Whether any value is being masked now."""
        return self._compiled is not None

    def install(self) -> None:
        """Wrap the process's log record factory (once)."""
        with self._lock:
            if self._installed:
                return
            self._installed = True
            previous = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self._factory(previous))

    def _factory(
        self, previous: Callable[..., logging.LogRecord]
    ) -> Callable[..., logging.LogRecord]:
        def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return self.redact(previous(*args, **kwargs))

        return make

    def redact(self, record: logging.LogRecord) -> logging.LogRecord:
        """``record`` with the tracked values masked in its message, traceback and stack."""
        pattern = self._compiled
        if pattern is None:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself, unredacted args
            record.msg, record.args = "(log message withheld: it could not be formatted)", None
            return record
        masked = pattern.sub(MASK, message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or self._formatter.formatException(record.exc_info)
            hidden = pattern.sub(MASK, text)
            if hidden != text:
                # handlers that format exc_info themselves would show the raw values: the
                # masked text replaces it
                record.exc_text, record.exc_info = hidden, None
        if record.stack_info:
            record.stack_info = pattern.sub(MASK, record.stack_info)
        return record


#: the one redactor of this process (the log record factory is process-wide too)
LOG_REDACTOR = LogRedactor()
