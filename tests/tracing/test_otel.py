"""OpenTelemetry traces: spans of instances and attempts with their links and attributes
(the SDK's in-memory exporter), a real OTLP/HTTP export from a server process to a receiver
started here, traceparent propagation by the http action, and a run continuing its caller's
trace across a restart."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tideflow import ActionContext, ActionRegistry, Engine, EngineSettings
from tideflow.states import InstanceStatus
from tideflow.testing import Fake, memory_engine
from tideflow.tracing import parse_traceparent, tracing_wanted
from tideflow.tracing.otel import instance_span_context

from .receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def exported() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _hex(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def _by_name(spans: Any) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


async def test_a_span_per_instance_and_attempt_with_links_and_attributes(
        exported: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = exported
    user_tracer = provider.get_tracer("the-service")

    def sync_step(ctx: ActionContext, params: Any) -> None:
        # runs in the engine's thread pool: the attempt's span is still the current one
        with user_tracer.start_as_current_span("charge card"):
            pass

    async def async_step(ctx: ActionContext, params: Any) -> None:
        with user_tracer.start_as_current_span("send mail"):
            await asyncio.sleep(0)

    dag = {"id": "traced", "tasks": [
        {"id": "flaky", "actionName": "flaky", "retry": {"maxAttempts": 2, "backoffSecs": 30}},
        {"id": "charge", "actionName": "charge", "dependOn": ["flaky"]},
        {"id": "mail", "actionName": "mail", "dependOn": ["charge"]},
    ]}
    def register(registry: ActionRegistry) -> None:
        registry.add_function("charge", sync_step)
        registry.add_function("mail", async_step)

    fakes = {"flaky": Fake(raises=[OSError("refused")])}
    async with memory_engine(actions=register, fakes=fakes, dags=[dag]) as engine:
        engine.enable_tracing(provider)
        inst = await engine.run_dag("traced", wait=20)
    assert inst.status == InstanceStatus.SUCCESS

    spans = _by_name(exporter.get_finished_spans())
    (run,) = spans["run traced"]
    flaky = sorted(spans["task flaky"], key=lambda s: s.attributes["tideflow.task.attempt"])
    (charge,) = spans["task charge"]
    (mail,) = spans["task mail"]
    (card,) = spans["charge card"]
    (sent,) = spans["send mail"]

    # one trace; the instance span is the root, each attempt its child, user spans nest
    assert run.parent is None
    trace_id = run.context.trace_id
    for s in (*flaky, charge, mail, card, sent):
        assert s.context.trace_id == trace_id
    for s in (*flaky, charge, mail):
        assert s.parent is not None and s.parent.span_id == run.context.span_id
    assert card.parent is not None and card.parent.span_id == charge.context.span_id
    assert sent.parent is not None and sent.parent.span_id == mail.context.span_id
    # the instance span's ids are derived from the instance id
    derived = instance_span_context(inst.id, None)
    assert (run.context.trace_id, run.context.span_id) == (derived.trace_id, derived.span_id)

    assert dict(run.attributes or {}) == {
        "tideflow.dag.id": "traced", "tideflow.dag.version": 1,
        "tideflow.instance.id": inst.id, "tideflow.status": "success",
        "tideflow.trigger": "manual", "tideflow.node.id": "test-node"}
    assert run.status.status_code == StatusCode.OK
    assert [dict(s.attributes or {}) for s in flaky] == [
        {"tideflow.dag.id": "traced", "tideflow.dag.version": 1, "tideflow.instance.id": inst.id,
         "tideflow.task.id": "flaky", "tideflow.task.action": "flaky",
         "tideflow.task.attempt": n, "tideflow.node.id": "test-node", "tideflow.status": status}
        for n, status in ((1, "failed"), (2, "success"))]
    assert flaky[0].status.status_code == StatusCode.ERROR
    assert flaky[0].status.description == "OSError: refused"
    assert flaky[1].status.status_code == StatusCode.OK
    # the spans carry the attempts' own times: the second began after the first's back-off
    assert flaky[0].end_time is not None and flaky[1].start_time is not None
    assert flaky[0].end_time <= flaky[1].start_time
    assert run.start_time is not None and run.end_time is not None
    assert run.start_time <= flaky[0].start_time and mail.end_time <= run.end_time  # type: ignore[operator]


async def test_a_failed_run_has_an_error_span(
        exported: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = exported
    dag = {"id": "fails", "tasks": [{"id": "x", "actionName": "boom"}]}
    async with memory_engine(fakes={"boom": Fake(raises=[RuntimeError("disk full")])},
                             dags=[dag]) as engine:
        engine.enable_tracing(provider)
        inst = await engine.run_dag("fails", wait=20)
    assert inst.status == InstanceStatus.FAILED
    spans = _by_name(exporter.get_finished_spans())
    assert spans["run fails"][0].status.status_code == StatusCode.ERROR
    assert spans["run fails"][0].status.description == "task 'x' failed: RuntimeError: disk full"
    assert spans["run fails"][0].attributes["tideflow.status"] == "failed"  # type: ignore[index]
    assert spans["task x"][0].status.description == "RuntimeError: disk full"


async def test_a_run_continues_its_callers_trace(
        exported: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = exported
    dag = {"id": "child", "tasks": [{"id": "a", "actionName": "a"}]}
    async with memory_engine(fakes={"a": Fake()}, dags=[dag]) as engine:
        engine.enable_tracing(provider)
        given = await engine.run_dag("child", trace_parent=CALLER.upper(), wait=20)
        # inside a span of the caller's own: that span is the parent
        with provider.get_tracer("caller").start_as_current_span("handle request") as caller:
            implicit = await engine.run_dag("child", wait=20)
        ignored = await engine.run_dag("child", trace_parent="00-garbage", wait=20)
    assert given.trace_parent == CALLER
    assert implicit.trace_parent is not None
    assert ignored.trace_parent is None
    runs = {s.attributes["tideflow.instance.id"]: s  # type: ignore[index]
            for s in exporter.get_finished_spans() if s.name == "run child"}
    run = runs[given.id]
    assert _hex(run.context.trace_id, 32) == CALLER_TRACE
    assert run.parent is not None and _hex(run.parent.span_id, 16) == CALLER_SPAN
    other = runs[implicit.id]
    assert other.context.trace_id == caller.get_span_context().trace_id
    assert other.parent is not None
    assert other.parent.span_id == caller.get_span_context().span_id
    assert runs[ignored.id].parent is None


class _Target:
    """An HTTP server that records the trace headers it is sent."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                target.seen.append(self.headers.get("traceparent"))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[_Target]:
    t = _Target()
    yield t
    t.close()


async def test_the_http_action_sends_the_attempts_traceparent(
        exported: tuple[TracerProvider, InMemorySpanExporter], target: _Target) -> None:
    provider, exporter = exported
    dag = {"id": "calls", "tasks": [
        {"id": "call", "actionName": "http", "params": {"url": target.url}},
        {"id": "own", "actionName": "http", "dependOn": ["call"],
         "params": {"url": target.url, "headers": {"TraceParent": CALLER}}},
    ]}
    async with memory_engine(dags=[dag]) as engine:
        engine.enable_tracing(provider)
        inst = await engine.run_dag("calls", wait=20)
    assert inst.status == InstanceStatus.SUCCESS, [t.reason for t in inst.tasks]
    (call,) = [s for s in exporter.get_finished_spans() if s.name == "task call"]
    sc = call.context
    assert target.seen == [f"00-{_hex(sc.trace_id, 32)}-{_hex(sc.span_id, 16)}-01",
                           CALLER]  # a traceparent given in params is sent as given


async def test_untraced_engines_send_no_traceparent(target: _Target) -> None:
    dag = {"id": "calls", "tasks": [{"id": "call", "actionName": "http",
                                     "params": {"url": target.url}}]}
    async with memory_engine(dags=[dag]) as engine:
        inst = await engine.run_dag("calls", wait=20)
    assert inst.status == InstanceStatus.SUCCESS
    assert target.seen == [None]


async def test_the_callers_trace_survives_a_restart(
        tmp_path: Path, exported: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """The parent is stored with the instance, and the instance span's ids are derived: the
    attempts a second process runs join the same trace under the same instance span."""
    provider, exporter = exported
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    dag = {"id": "approve", "tasks": [
        {"id": "ask", "actionName": "approval"},
        {"id": "do", "actionName": "do", "dependOn": ["ask"]},
    ]}
    settings = EngineSettings(node_id="first")
    async with Engine.from_url(url, settings=settings) as first:
        first.actions.add_function("do", Fake())
        first.enable_tracing(provider)
        await first.register_dag(dag)
        inst = await first.run_dag("approve", trace_parent=CALLER, wait=20)
        assert inst.status == InstanceStatus.BLOCKED
    stored_attempts = {s.name for s in exporter.get_finished_spans()}
    assert "task ask" in stored_attempts
    async with Engine.from_url(url, settings=EngineSettings(node_id="second")) as second:
        second.actions.add_function("do", Fake())
        second.enable_tracing(provider)
        assert (await second.get_instance(inst.id)).trace_parent == CALLER
        await second.continue_instance(inst.id)
        done = await second.wait_for(inst.id, timeout=20)
    assert done.status == InstanceStatus.SUCCESS
    spans = _by_name(exporter.get_finished_spans())
    (run,) = spans["run approve"]
    (do,) = spans["task do"]
    assert _hex(run.context.trace_id, 32) == CALLER_TRACE
    assert run.parent is not None and _hex(run.parent.span_id, 16) == CALLER_SPAN
    assert do.attributes["tideflow.node.id"] == "second"  # type: ignore[index]
    for attempt in (*spans["task ask"], do):
        assert attempt.context.trace_id == run.context.trace_id
        assert attempt.parent is not None and attempt.parent.span_id == run.context.span_id


def test_when_tracing_is_wanted() -> None:
    assert not tracing_wanted(None, {})
    assert tracing_wanted(True, {})
    assert not tracing_wanted(False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"})
    assert tracing_wanted(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"})
    assert tracing_wanted(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x:4318/v1/t"})
    assert tracing_wanted(None, {"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing_wanted(None, {"OTEL_TRACES_EXPORTER": "none",
                                     "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"})
    assert not tracing_wanted(None, {"OTEL_SDK_DISABLED": "true",
                                     "OTEL_TRACES_EXPORTER": "otlp"})


def test_traceparent_headers_are_checked() -> None:
    assert parse_traceparent(CALLER) == CALLER
    assert parse_traceparent(f" {CALLER.upper()} ") == CALLER
    for bad in ("", "00-abc", f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01",
                f"00-{'0' * 32}-{CALLER_SPAN}-01", f"00-{CALLER_TRACE}-{'0' * 16}-01",
                f"{CALLER}-extra"):
        assert parse_traceparent(bad) is None, bad
    # a later version: its first four fields are read
    assert parse_traceparent(f"01-{CALLER_TRACE}-{CALLER_SPAN}-01-more") == \
        f"01-{CALLER_TRACE}-{CALLER_SPAN}-01"


def test_without_tracing_nothing_imports_opentelemetry(tmp_path: Path) -> None:
    code = """
import asyncio, sys
from tideflow.testing import memory_engine

async def main():
    async with memory_engine(dags=[{"id": "d", "tasks": [
            {"id": "a", "actionName": "wait", "params": {"waitingTime": "1s"}},
            {"id": "b", "actionName": "http", "dependOn": ["a"],
             "params": {"url": "http://127.0.0.1:9/"}}]}]) as engine:
        await engine.run_dag("d", wait=20)
    bad = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
    assert not bad, bad

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_server_exports_to_an_otlp_http_receiver(tmp_path: Path) -> None:
    """`tideflow server --otel` with the standard OTEL_* variables; a run posted with a
    traceparent header continues the caller's trace, and the spans reach the receiver as
    OTLP protobuf over HTTP."""
    port = _free_port()
    with Receiver() as receiver:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
               "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
               "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
               "OTEL_SERVICE_NAME": "tideflow-test",
               "OTEL_BSP_SCHEDULE_DELAY": "50"}
        log = tmp_path / "server.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tideflow.cli.main", "server", "--otel",
                 "--db", f"sqlite:///{tmp_path / 'otel.db'}", "--node-id", "otel-node",
                 "--http", f"127.0.0.1:{port}"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            dag = {"id": "exported", "tasks": [
                {"id": "one", "actionName": "shell", "params": {"cmd": ["true"]}},
                {"id": "two", "actionName": "shell", "params": {"cmd": ["true"]},
                 "dependOn": ["one"]}]}
            assert httpx.post(url + "/api/v1/dags", json=dag, timeout=30).status_code == 201
            res = httpx.post(url + "/api/v1/dags/exported/run", json={"wait": 20},
                             headers={"traceparent": CALLER}, timeout=30)
            assert res.status_code == 201 and res.json()["status"] == "success", res.text
            inst_id = res.json()["id"]
            while len(receiver.spans) < 3 and time.monotonic() < deadline + 10:
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(20)
    spans = {s.name: s for s in receiver.spans}
    assert set(spans) == {"run exported", "task one", "task two"}, log.read_text()
    run = spans["run exported"]
    assert run.trace_id == CALLER_TRACE and run.parent_span_id == CALLER_SPAN
    assert run.attributes["tideflow.instance.id"] == inst_id
    assert run.attributes["tideflow.node.id"] == "otel-node"
    assert run.service_name == "tideflow-test"
    for name in ("task one", "task two"):
        assert spans[name].trace_id == CALLER_TRACE
        assert spans[name].parent_span_id == run.span_id
        assert spans[name].attributes["tideflow.status"] == "success"
    assert all(r.get("x-tenant") == "acme" for r in receiver.requests)


def test_the_tracer_provider_of_the_application_is_used(
        exported: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """An engine with tracing on and no provider given uses the global one when the
    application set it (in a subprocess: the global provider can be set once)."""
    code = """
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tideflow import EngineSettings
from tideflow.testing import memory_engine

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

async def main():
    async with memory_engine(settings=EngineSettings(otel=True),
                             dags=[{"id": "d", "tasks": [{"id": "a", "actionName": "wait",
                                                          "params": {"waitingTime": "1s"}}]}]
                             ) as engine:
        await engine.run_dag("d", wait=20)
    print(sorted(s.name for s in exporter.get_finished_spans()))

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['run d', 'task a']"
    assert trace is not None


def test_tideflow_run_otel_flushes_its_spans_at_exit(tmp_path: Path) -> None:
    """`tideflow run --otel`: the spans batched when the run ends reach the receiver before
    the process exits; `--no-otel` sends nothing whatever the environment says."""
    dag = tmp_path / "hello.yaml"
    dag.write_text("id: hello\ntasks:\n"
                   "  - {id: hi, actionName: shell, params: {cmd: [echo, hi]}}\n")
    with Receiver() as receiver:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint + "/v1/traces",
               # far longer than the run: only the flush at close can send them in time
               "OTEL_BSP_SCHEDULE_DELAY": "60000"}
        for flag in ("--no-otel", "--otel"):
            out = subprocess.run(
                [sys.executable, "-m", "tideflow.cli.main", "run", str(dag), flag,
                 "--db", f"sqlite:///{tmp_path / 'run.db'}"],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            if flag == "--no-otel":
                assert receiver.spans == []
    assert sorted(s.name for s in receiver.spans) == ["run hello", "task hi"]
