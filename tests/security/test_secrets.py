"""Secret vars stay hidden: in traces, reasons, params, share data, the JSON shape, every log
record (DEBUG included, any logger), the CLI and the HTTP API."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from api.harness import ApiServer
from tideflow import ActionContext, ActionError, Engine, InstanceStatus, instance_to_json
from tideflow.serialize import dag_to_json

# quotes, URL and JSON specials: each gets escaped somewhere on its way to a message
SECRET = "tok-9Zq'\"&= /x\\y"
CORE = "9Zq"  # the part no escaping changes: it must not show anywhere


def _clean(text: str) -> None:
    assert CORE not in text, text[max(0, text.find(CORE) - 300): text.find(CORE) + 300]


@pytest.fixture
def http_url() -> Iterator[str]:
    """A local HTTP server that answers 500 with the request line in its body."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = f"refused {self.path}".encode()
            self.send_response(500)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


LEAKY = ("import sys; print('stdout', sys.argv[1]); sys.stderr.write('stderr ' + sys.argv[1]);"
         " sys.exit(3)")


def _secret_dag(dag_id: str, http_url: str) -> dict[str, Any]:
    return {
        "id": dag_id,
        "vars": {"token": {"defaultValue": "", "secret": True}, "region": {"defaultValue": "eu"}},
        "tasks": [
            {"id": "sh", "actionName": "shell",
             "params": {"cmd": [sys.executable, "-c", LEAKY, "{{token}}"],
                        "env": {"TOKEN": "{{token}}"}}},
            {"id": "py", "actionName": "leak", "params": {"t": "{{ vars.token }}"}},
            {"id": "http", "actionName": "http",
             "params": {"url": http_url + "/x?region={{region}}", "query": {"t": "{{token}}"},
                        "headers": {"authorization": "Bearer {{token}}"}}},
            {"id": "save", "actionName": "shell",
             "params": {"cmd": ["printf", "%s", "{{token}}"], "saveAs": "copy"}},
        ],
    }


async def _leak(ctx: ActionContext, params: Any) -> None:
    value = params["t"]
    logging.getLogger("tideflow.engine").debug("about to use %s", value)
    logging.getLogger("tideflow.custom.deep").info("token=%r", value)
    logging.getLogger("somewhere.else").warning(f"leaking {value}")
    try:
        raise ValueError(f"inner {value!r}")
    except ValueError:
        logging.getLogger("tideflow.engine").exception("failed with %s", value)
    ctx.trace(f"trace {value} / {json.dumps(value)} / {value!r}")
    ctx.share_data["echo"] = value
    raise ActionError(f"rejected {value!r}")


async def test_masked_in_logs_traces_reasons_and_json(
    make_engine: Callable[..., Engine], http_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, DEBUG included
    async with make_engine() as engine:
        engine.actions.add_function("leak", _leak)
        record = await engine.register_dag(_secret_dag("secret", http_url))
        inst = await engine.run_dag("secret", {"token": SECRET}, wait=60)
        stored = await engine.get_instance(inst.id)
    tasks = {t.task_id: t for t in inst.tasks}
    assert inst.status == InstanceStatus.FAILED
    assert tasks["sh"].reason is not None and tasks["sh"].reason.startswith("exit code 3")
    assert "***" in tasks["sh"].reason
    assert "***" in (tasks["py"].reason or "") and "***" in (tasks["http"].reason or "")
    # the task really had the value (stored in clear, so a restarted node can use it)
    assert stored.share_data["copy"] == SECRET and stored.vars["token"] == SECRET

    # traces and reasons are masked as they are recorded
    for task in stored.tasks:
        for text in [task.reason or "", *(t.message for t in task.traces),
                     *(a.reason or "" for a in task.attempt_history)]:
            _clean(text)
    _clean(stored.reason or "")
    # the JSON shape hides what is stored in clear: vars, params, share data
    shown = json.dumps(instance_to_json(stored, secrets=record.definition.secret_vars()))
    _clean(shown)
    assert '"token": "***"' in shown
    # the logs: the engine's, an action's own logger, httpx's request line, a traceback
    assert caplog.records, "nothing was logged"
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    _clean(caplog.text)
    _clean("\n".join(r.getMessage() for r in caplog.records))
    assert "about to use ***" in caplog.text and "inner" in caplog.text


async def test_masking_lasts_as_long_as_the_instance_runs_here(
    make_engine: Callable[..., Engine], caplog: pytest.LogCaptureFixture
) -> None:
    """Values are masked while their instance runs; unrelated text is left alone."""
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    async def probe(ctx: ActionContext, params: Any) -> None:
        logging.getLogger("tideflow.probe").info("value %s, other %s", ctx.vars["token"], "hi")
        seen.append("ran")

    async with make_engine() as engine:
        engine.actions.add_function("probe", probe)
        await engine.register_dag({"id": "p", "vars": {"token": {"secret": True}},
                                   "tasks": [{"id": "a", "actionName": "probe"}]})
        inst = await engine.run_dag("p", {"token": "hush-" + CORE}, wait=30)
    assert inst.status == InstanceStatus.SUCCESS and seen == ["ran"]
    assert "value ***, other hi" in caplog.text
    _clean(caplog.text)


def test_a_secret_default_is_not_shown_with_the_dag(tmp_path: Path) -> None:
    async def go() -> dict[str, Any]:
        async with Engine.from_url(f"sqlite:///{tmp_path / 'd.db'}") as engine:
            record = await engine.register_dag({
                "id": "d", "cron": "0 3 * * *", "cronVars": {"token": "cron-" + CORE},
                "vars": {"token": {"defaultValue": "def-" + CORE, "secret": True},
                         "plain": {"defaultValue": "seen"}},
                "tasks": [{"id": "a", "actionName": "wait", "params": {"waitingTime": "0s"}}]})
            return dag_to_json(record)

    import asyncio

    shown = asyncio.run(go())
    _clean(json.dumps(shown))
    assert shown["definition"]["vars"]["token"]["defaultValue"] == "***"
    assert shown["definition"]["cronVars"]["token"] == "***"
    assert shown["definition"]["vars"]["plain"]["defaultValue"] == "seen"


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_run_output(tmp_path: Path, as_json: bool) -> None:
    dag = tmp_path / "leak.yaml"
    dag.write_text(json.dumps({
        "id": "leak",
        "vars": {"token": {"secret": True}},
        "tasks": [{"id": "sh", "actionName": "shell",
                   "params": {"cmd": [sys.executable, "-c", LEAKY, "{{token}}"]}}],
    }))
    cmd = [sys.executable, "-m", "tideflow.cli.main", "run", str(dag), "--db",
           f"sqlite:///{tmp_path / 'cli.db'}", "--var", f"token={SECRET}"]
    cmd += ["--json"] if as_json else []
    # the node's own log goes to stderr at DEBUG: it must be masked too
    env = {**os.environ, "COLUMNS": "200", "TIDEFLOW_LOG": "DEBUG"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1, done.stderr
    _clean(done.stdout)
    _clean(done.stderr)
    if as_json:
        shown = json.loads(done.stdout)
        assert shown["vars"]["token"] == "***"
        assert "***" in shown["tasks"][0]["reason"]
    else:
        assert "***" in done.stdout + done.stderr


def test_http_api_and_server_log(tmp_path: Path, http_url: str) -> None:
    server = ApiServer(f"sqlite:///{tmp_path / 'api.db'}", tmp_path).start()
    try:
        dag = _secret_dag("api-secret", http_url)
        dag["tasks"] = [t for t in dag["tasks"] if t["actionName"] != "leak"]
        dag["vars"]["token"]["defaultValue"] = "default-" + CORE
        with server.client() as c:
            assert c.post("/api/v1/dags", json=dag).status_code == 201
            r = c.post("/api/v1/dags/api-secret/run",
                       json={"vars": {"token": SECRET}, "wait": 60})
            assert r.status_code == 201, r.text
            inst = r.json()
            bodies = [r.text]
            for path in (f"/api/v1/dag-instances/{inst['id']}", "/api/v1/dag-instances",
                         f"/api/v1/dag-instances/{inst['id']}/tasks/sh",
                         f"/api/v1/dag-instances/{inst['id']}/tasks/save",
                         "/api/v1/dags/api-secret", "/api/v1/dags"):
                got = c.get(path)
                assert got.status_code == 200, (path, got.text)
                bodies.append(got.text)
            # the default value is used when no value is given, and hidden the same way
            r2 = c.post("/api/v1/dags/api-secret/run", json={"wait": 60})
            assert r2.status_code == 201 and r2.json()["status"] == "failed", r2.text
            bodies.append(r2.text)
    finally:
        server.stop()
    final = json.loads(bodies[1])
    assert final["status"] == "failed"
    assert final["vars"]["token"] == "***"
    save = json.loads(bodies[4])
    assert save["status"] == "success" and save["params"]["cmd"][2] == "***"
    assert final["shareData"]["copy"] == "***"
    for body in bodies:
        _clean(body)
    _clean(server.log.read_text())


async def test_a_secret_in_a_shell_script_and_its_default_never_reach_a_log(
    make_engine: Callable[..., Engine], caplog: pytest.LogCaptureFixture
) -> None:
    """The default is written at registration (a driver logs its parameters at DEBUG), and
    the script of a ``shell: true`` task is traced: neither shows the secret, in any form."""
    caplog.set_level(logging.DEBUG)
    async with make_engine() as engine:
        record = await engine.register_dag({
            "id": "script", "vars": {"token": {"defaultValue": SECRET, "secret": True}},
            "tasks": [{"id": "sh", "actionName": "shell", "params": {
                "shell": True, "cmd": "printf '%s' '{{token}}' \"{{token}}\" {{token}}; exit 3"}}],
        })
        inst = await engine.run_dag("script", wait=60)
        stored = await engine.get_instance(inst.id)
    task = stored.tasks[0]
    assert task.status.value == "failed" and (task.reason or "").startswith("exit code 3")
    assert task.params is not None and task.params["env"] == {"TIDEFLOW_V1": SECRET}
    for text in [task.reason or "", *(t.message for t in task.traces)]:
        _clean(text)
    assert any(t.message.startswith("pid ") for t in task.traces)
    _clean(json.dumps(instance_to_json(stored, secrets=record.definition.secret_vars())))
    assert any("INSERT" in r.getMessage() for r in caplog.records), "no driver log to check"
    _clean(caplog.text)


def test_every_derived_form_is_masked() -> None:
    import shlex
    from urllib.parse import quote

    from tideflow.redact import mask_text, secret_forms

    forms = secret_forms([SECRET])
    derived = [
        shlex.join(["sh", "-c", f"echo {shlex.quote(SECRET)}"]),  # quoted, then re-quoted
        json.dumps(json.dumps({"t": SECRET})),  # JSON inside JSON
        json.dumps({"url": "http://x/?t=" + quote(SECRET, safe="")}),  # a URL in JSON
        repr([SECRET]), quote(quote(SECRET, safe=""), safe=""),
    ]
    for text in derived:
        assert CORE in text
        _clean(mask_text(text, forms))


def test_typed_secret_values_are_masked_even_when_falsy() -> None:
    from datetime import UTC, datetime

    from tideflow import DagRecord, InstanceRecord
    from tideflow.definition.loader import load_dag_text
    from tideflow.serialize import dag_to_json, instance_to_json
    from tideflow.states import DagStatus, InstanceStatus

    dag = load_dag_text("id: s\nvars:\n  pin: {type: integer, secret: true, defaultValue: 0}\n"
                        "  off: {type: boolean, secret: true, defaultValue: false}\n"
                        "tasks: [{id: a, actionName: x}]\n")
    now = datetime.now(UTC)
    inst = InstanceRecord("i", "s", 1, InstanceStatus.RUNNING, "manual",
                          {"pin": 0, "off": False}, now, now)
    assert instance_to_json(inst, secrets=dag.secret_vars())["vars"] == {"pin": "***",
                                                                        "off": "***"}
    shown = dag_to_json(DagRecord("s", 1, dag, DagStatus.NORMAL, now, now))["definition"]
    assert {n: v["defaultValue"] for n, v in shown["vars"].items()} == {"pin": "***",
                                                                         "off": "***"}


_RULES = [  # (var declaration, a value that breaks it)
    ({"pattern": "^[a-z]+$"}, "SuperSecretX1"),
    ({"enum": ["a", "b"]}, "SuperSecretX1"),
    ({"type": "integer"}, "SuperSecretX1"),
    ({"type": "object"}, "SuperSecretX1"),
    ({"type": "integer", "maximum": 10}, "987654321"),
]


@pytest.mark.parametrize("rule,bad", _RULES, ids=[str(r[0]) for r in _RULES])
def test_a_secret_value_that_breaks_a_rule_is_not_shown(tmp_path: Path, rule: dict[str, Any],
                                                        bad: str) -> None:
    from tideflow import DefinitionError
    from tideflow.definition.loader import load_dag_dict
    from tideflow.errors import InputError
    from tideflow.vars import resolve_run_vars

    def dag(default: str = "") -> dict[str, Any]:
        var = {"secret": True, **rule, **({"defaultValue": default} if default else {})}
        return {"id": "d", "vars": {"k": var},
                "tasks": [{"id": "t", "actionName": "shell", "params": {"cmd": "true"}}]}

    with pytest.raises(DefinitionError) as at_registration:
        load_dag_dict(dag(bad))
    with pytest.raises(InputError) as at_run:
        resolve_run_vars(load_dag_dict(dag()), {"k": bad})
    for exc in (at_registration.value, at_run.value):
        text = str(exc) + json.dumps(getattr(exc, "details", None))
        assert bad not in text and "not shown" in text, text
    # the API's error body too
    server = ApiServer(f"sqlite:///{tmp_path / 'api.db'}", tmp_path).start()
    try:
        with server.client() as c:
            refused = c.post("/api/v1/dags", json=dag(bad))
            assert refused.status_code in (400, 422) and bad not in refused.text, refused.text
            assert c.post("/api/v1/dags", json=dag()).status_code == 201
            r = c.post("/api/v1/dags/d/run", json={"vars": {"k": bad}})
            assert r.status_code in (400, 422) and bad not in r.text, r.text
    finally:
        server.stop()
    assert bad not in server.log.read_text()


def test_a_secret_through_any_two_encoders_is_masked() -> None:
    """Each pair of the encoders a value meets (the engine's JSON, Jinja's tojson and
    urlencode, urllib's quote, shell quoting, the URL httpx builds and logs) is masked."""
    import itertools
    import shlex
    from urllib.parse import quote, quote_plus

    import httpx
    from jinja2 import Environment

    from tideflow.redact import mask_text, secret_forms

    jinja = Environment()

    def template(source: str) -> Callable[[str], str]:
        return lambda v: jinja.from_string(source).render(v=v)

    encoders: list[Callable[[str], str]] = [
        json.dumps, template("{{ v|tojson }}"), template("{{ v|urlencode }}"),
        lambda v: quote(v, safe=""), quote_plus, shlex.quote,
        lambda v: str(httpx.URL("http://h/login/" + v)),
        lambda v: str(httpx.URL("http://h/", params={"q": v})),
    ]
    for secret in ("my pass@word!'<>&\"", SECRET):
        forms = secret_forms([secret])
        for first, second in itertools.product(encoders, repeat=2):
            text = second(first(secret))
            masked = mask_text(text, forms)
            assert "pass@word" not in masked and CORE not in masked, (text, masked)
