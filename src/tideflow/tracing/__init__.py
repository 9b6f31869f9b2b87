"""Tracing: what the engine and the built-in actions need to know about it, without importing
OpenTelemetry (it is the optional ``[otel]`` extra; :mod:`tideflow.tracing.otel` is the part
that uses it).

- :func:`tracing_wanted`: whether the settings or the standard ``OTEL_*`` environment
  variables ask for traces;
- :func:`propagation_headers`: the ``traceparent`` (and ``tracestate``) of the attempt that
  runs now, for an action that calls another service (the ``http`` action sends them);
- :func:`parse_traceparent`: a W3C ``traceparent`` header checked, as stored with an instance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

#: W3C Trace Context, version 00 (a later version is read by its first four fields)
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")

#: the environment variables that turn tracing on when no setting says otherwise
OTEL_ENV = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

#: how the attempt running in this context writes its propagation headers (None: not traced)
_headers: ContextVar[Callable[[], dict[str, str]] | None] = ContextVar(
    "tideflow_trace_headers", default=None)


def tracing_wanted(setting: bool | None, env: Mapping[str, str]) -> bool:
    """``setting`` when given; else True when ``OTEL_TRACES_EXPORTER`` names an exporter other
    than ``none``, or an OTLP endpoint is set, and ``OTEL_SDK_DISABLED`` is not true."""
    if setting is not None:
        return setting
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return any(env.get(name, "").strip() for name in OTEL_ENV[1:])


def parse_traceparent(value: str | None) -> str | None:
    """``value`` when it is a valid W3C ``traceparent`` (lower-cased), else None: by the
    specification, an invalid one is ignored (the run starts a trace of its own)."""
    if not value:
        return None
    text = value.strip().lower()
    m = _TRACEPARENT.match(text)
    if m is None:
        return None
    version, trace_id, span_id, _flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"} \
            or set(span_id) == {"0"}:
        return None
    return text if version == "00" else text[:55]


def propagation_headers() -> dict[str, str]:
    """The trace headers of the attempt running in this context; empty when not traced."""
    make = _headers.get()
    return make() if make is not None else {}


@contextmanager
def headers_from(make: Callable[[], dict[str, str]]) -> Iterator[None]:
    """Within the block, :func:`propagation_headers` calls ``make``."""
    token = _headers.set(make)
    try:
        yield
    finally:
        _headers.reset(token)
