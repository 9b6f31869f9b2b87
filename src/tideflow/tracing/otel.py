"""OpenTelemetry traces of one engine: a span per instance and per task attempt.

Imported only when tracing is on (it needs the ``[otel]`` extra). The observer watches the
engine's events (:mod:`tideflow.engine.observer`):

- an attempt's span starts when the attempt starts and ends when it ends, with the DAG,
  version, instance, task, attempt, action, node and status as attributes; the action's
  ``run`` (and its other hooks) run with it as the current span, so spans an action makes
  nest under it, and the ``http`` action sends its ``traceparent``;
- an instance's span is written when the instance ends, from its creation to its end. Its
  ids are derived from the instance id (and from the trace it continues, stored with the
  instance), so that every node that runs one of its attempts, before or after a restart or a
  failover, finds the same parent without asking anyone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..states import TaskStatus
from . import headers_from, parse_traceparent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from ..store.records import InstanceRecord, TaskRecord

log = logging.getLogger("tideflow.tracing")

#: how long closing waits for the last spans to be sent
SHUTDOWN_SECS = 1.5

_PROPAGATOR = TraceContextTextMapPropagator()
_FAILED = (TaskStatus.FAILED, TaskStatus.CANCELED)


def _ns(dt: datetime | None) -> int | None:
    return int(dt.timestamp() * 1e9) if dt is not None else None


def parent_context(trace_parent: str | None) -> otel_context.Context | None:
    """The context of a stored ``traceparent`` (the caller a run continues), or None."""
    if not trace_parent:
        return None
    ctx = _PROPAGATOR.extract({"traceparent": trace_parent})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def instance_span_context(instance_id: str, trace_parent: str | None) -> SpanContext:
    """The instance span's ids: its span id from the instance id; its trace id the one of the
    trace it continues, else from the instance id too."""
    digest = hashlib.sha256(f"tideflow-instance:{instance_id}".encode()).digest()
    parent = parent_context(trace_parent)
    if parent is not None:
        ps = trace.get_current_span(parent).get_span_context()
        trace_id, flags = ps.trace_id, ps.trace_flags
    else:
        trace_id, flags = int.from_bytes(digest[:16], "big") or 1, TraceFlags(TraceFlags.SAMPLED)
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)


def current_traceparent() -> str | None:
    """The ``traceparent`` of the span current in the caller (a run started inside a traced
    request handler continues that trace), or None."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return parse_traceparent(carrier.get("traceparent"))


class _ForcedIds:
    """Wraps a tracer's id generator so that the next span takes the ids given (the instance
    span, whose ids are derived, not random)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.forced: tuple[int, int] | None = None

    def generate_span_id(self) -> int:
        if self.forced is not None:
            return self.forced[1]
        return int(self.inner.generate_span_id())

    def generate_trace_id(self) -> int:
        if self.forced is not None:
            return self.forced[0]
        return int(self.inner.generate_trace_id())

    def is_trace_id_random(self) -> bool:
        return False if self.forced is not None else bool(
            getattr(self.inner, "is_trace_id_random", lambda: False)())


def provider_from_env(service_name: str, env: Mapping[str, str] | None = None
                      ) -> TracerProvider:
    """An SDK provider exporting with OTLP over HTTP in batches, configured by the standard
    ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, timeout); ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` name the resource (``service_name`` when unset).
    ``OTEL_TRACES_EXPORTER=console`` prints spans instead."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    env = os.environ if env is None else env
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if protocol != "http/protobuf":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL %r: tideflow exports OTLP over HTTP with "
                    "protobuf only (port 4318 on a collector)", protocol)
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service_name})
    resource = resource.merge(OTELResourceDetector().detect())
    # shut down by the observer's close, bounded: not again at exit, unbounded
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    for name in names:
        exporter: SpanExporter
        if name in ("otlp", ""):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        elif name == "console":
            exporter = ConsoleSpanExporter()
        elif name == "none":
            continue
        else:
            log.warning("OTEL_TRACES_EXPORTER %r is not one tideflow knows (otlp, console, "
                        "none): no spans go there", name)
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class _AttemptScope(AbstractAsyncContextManager[None]):
    """The attempt's span made current for the action's calls."""

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: object | None = None
        self._headers: Any = None

    async def __aenter__(self) -> None:
        ctx = trace.set_span_in_context(self._span)
        self._token = otel_context.attach(ctx)

        def headers() -> dict[str, str]:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=ctx)
            return carrier

        self._headers = headers_from(headers)
        self._headers.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._headers.__exit__(exc_type, exc, tb)
        otel_context.detach(self._token)  # type: ignore[arg-type]


class TracingObserver:
    """Spans of one engine's instances and attempts (``engine.add_observer``; the engine adds
    one itself when tracing is on).

    ``tracer_provider``: where spans go; None uses the global provider when the application
    set one, else builds one from the ``OTEL_*`` environment (:func:`provider_from_env`),
    which :meth:`close` then flushes and shuts down."""

    def __init__(self, node_id: str, tracer_provider: Any = None) -> None:
        self.node_id = node_id
        self._own: TracerProvider | None = None
        if tracer_provider is None:
            current = trace.get_tracer_provider()
            if isinstance(current, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
                self._own = provider_from_env("tideflow")
                tracer_provider = self._own
            else:
                tracer_provider = current
        from .. import __version__

        self._tracer = tracer_provider.get_tracer("tideflow", __version__)
        inner = getattr(self._tracer, "id_generator", None)
        self._ids: _ForcedIds | None = None
        if inner is not None:
            self._ids = _ForcedIds(inner)
            self._tracer.id_generator = self._ids
        #: attempts in flight: (instance id, task id) → span
        self._spans: dict[tuple[str, str], Span] = {}

    # -- observer events --------------------------------------------------------------------
    def task_started(self, inst: InstanceRecord, task: TaskRecord, delay_secs: float) -> None:
        parent = trace.set_span_in_context(NonRecordingSpan(
            instance_span_context(inst.id, inst.trace_parent)))
        attempt = task.attempt_history[-1] if task.attempt_history else None
        span = self._tracer.start_span(
            f"task {task.task_id}", context=parent, kind=SpanKind.INTERNAL,
            start_time=_ns(attempt.started_at if attempt else None),
            attributes={
                **self._instance_attributes(inst),
                "tideflow.task.id": task.task_id,
                "tideflow.task.action": task.action_name,
                "tideflow.task.attempt": task.attempts,
                "tideflow.node.id": self.node_id,
            },
        )
        old = self._spans.pop((inst.id, task.task_id), None)
        if old is not None:
            old.end()
        self._spans[(inst.id, task.task_id)] = span

    def task_finished(self, inst: InstanceRecord, task: TaskRecord, duration_secs: float) -> None:
        span = self._spans.pop((inst.id, task.task_id), None)
        if span is None:
            return
        status = task.attempt_history[-1].status if task.attempt_history else task.status
        span.set_attribute("tideflow.status", str(status))
        if status in _FAILED:
            span.set_status(Status(StatusCode.ERROR, task.reason or str(status)))
        elif status == TaskStatus.SUCCESS:
            span.set_status(Status(StatusCode.OK))
        ended = task.attempt_history[-1].ended_at if task.attempt_history else None
        span.end(end_time=_ns(ended))

    def instance_changed(self, inst: InstanceRecord, old_status: str | None) -> None:
        if not inst.status.is_final:
            return
        sc = instance_span_context(inst.id, inst.trace_parent)
        attributes: dict[str, Any] = {**self._instance_attributes(inst),
                                      "tideflow.status": str(inst.status),
                                      "tideflow.trigger": inst.trigger,
                                      "tideflow.node.id": inst.worker or self.node_id}
        if self._ids is not None:
            self._ids.forced = (sc.trace_id, sc.span_id)
        try:
            span = self._tracer.start_span(
                f"run {inst.dag_id}", context=parent_context(inst.trace_parent),
                kind=SpanKind.INTERNAL, start_time=_ns(inst.created_at), attributes=attributes)
        finally:
            if self._ids is not None:
                self._ids.forced = None
        if inst.status == "success":
            span.set_status(Status(StatusCode.OK))
        else:
            span.set_status(Status(StatusCode.ERROR, inst.reason or str(inst.status)))
        span.end(end_time=_ns(inst.ended_at or inst.updated_at))

    def attempt_scope(self, inst: InstanceRecord, task: TaskRecord
                      ) -> AbstractAsyncContextManager[None] | None:
        span = self._spans.get((inst.id, task.task_id))
        return _AttemptScope(span) if span is not None else None

    # -- the rest -----------------------------------------------------------------------------
    @staticmethod
    def _instance_attributes(inst: InstanceRecord) -> dict[str, Any]:
        return {"tideflow.dag.id": inst.dag_id, "tideflow.dag.version": inst.dag_version,
                "tideflow.instance.id": inst.id}

    def current_parent(self) -> str | None:
        return current_traceparent()

    def close(self) -> None:
        """End the spans of attempts still running (they show as interrupted), and flush and
        shut down the provider this observer built."""
        for span in self._spans.values():
            span.set_attribute("tideflow.status", "interrupted")
            span.end()
        self._spans.clear()
        if self._own is not None:
            # the last spans are sent, for a moment at most: an unreachable collector (an
            # exporter retrying for seconds) must not hold the process's exit up
            done = threading.Thread(target=self._own.shutdown, name="tideflow-otel-shutdown",
                                    daemon=True)
            done.start()
            done.join(SHUTDOWN_SECS)
            if done.is_alive():
                log.warning("OpenTelemetry: the last spans could not be sent within %gs; "
                            "left unsent", SHUTDOWN_SECS)
