"""Failures that must not be retried: NonRetryableError, retry.nonRetryable (exception class
names, shell exit codes, HTTP statuses) and http's default for 4xx."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tideflow import ActionContext, Engine, NonRetryableError, TaskStatus

from .dags import dag, task

RETRY5 = {"maxAttempts": 5, "backoffSecs": 0}


@pytest.fixture
def pyfuncs() -> Iterator[Any]:
    here = str(Path(__file__).parent)
    sys.path.insert(0, here)
    try:
        import pyfuncs

        pyfuncs.CALLS.clear()
        yield pyfuncs
    finally:
        sys.path.remove(here)


async def test_non_retryable_error_makes_one_attempt(db_url: str,
                                                    make_engine: Callable[..., Engine]) -> None:
    calls: list[int] = []

    async def reject(ctx: ActionContext, params: Any) -> None:
        calls.append(ctx.attempt)
        raise NonRetryableError("cluster name already taken")

    async with make_engine(db_url) as engine:
        engine.actions.add_function("reject", reject)
        await engine.register_dag(dag("nr", task("a", "reject", retry=RETRY5)))
        inst = await engine.run_dag("nr", wait=30)
        a = inst.tasks[0]
        assert calls == [1]
        assert (a.status, a.attempts, len(a.attempt_history)) == (TaskStatus.FAILED, 1, 1)
        assert a.reason == ("cluster name already taken (not retried: the action raised"
                            " NonRetryableError)")
        assert a.attempt_history[0].reason == a.reason
        stored = await engine.store.get_instance(inst.id)
        assert stored.tasks[0].attempts == 1
        # a person may still retry it: one more attempt
        await engine.retry(inst.id)
        again = await engine.wait_for(inst.id, timeout=30, settled=False)
        assert again.tasks[0].attempts == 2 and calls == [1, 2]


async def test_listed_exception_classes_match_by_name_base_or_full_name(
    make_engine: Callable[..., Engine], pyfuncs: Any
) -> None:
    async with make_engine(python_allowed_prefixes=("pyfuncs",)) as engine:
        await engine.register_dag(dag(
            "names",
            task("base", "python", params={"func": "pyfuncs:over_quota", "kwargs": {"key": "b"}},
                 retry={**RETRY5, "nonRetryable": ["QuotaError"]}),
            task("full", "python", params={"func": "pyfuncs:over_quota", "kwargs": {"key": "f"}},
                 retry={**RETRY5, "nonRetryable": "pyfuncs.RegionQuotaError"}),
            task("other", "python", params={"func": "pyfuncs:over_quota", "kwargs": {"key": "o"}},
                 retry={**RETRY5, "nonRetryable": ["KeyError"]}),
            task("raised", "python", params={"func": "pyfuncs:give_up", "kwargs": {"key": "r"}},
                 retry=RETRY5),
        ))
        inst = await engine.run_dag("names", wait=30)
    by = {t.task_id: t for t in inst.tasks}
    assert pyfuncs.CALLS == {"b": 1, "f": 1, "o": 5, "r": 1}
    assert by["base"].reason is not None
    assert by["base"].reason.endswith("(not retried: QuotaError is listed in retry.nonRetryable)")
    assert by["full"].reason is not None
    assert by["full"].reason.endswith(
        "(not retried: pyfuncs.RegionQuotaError is listed in retry.nonRetryable)")
    assert "not retried" not in (by["other"].reason or "")
    assert by["raised"].reason == ("r: the input is wrong, retrying cannot help"
                                   " (not retried: the action raised NonRetryableError)")


async def test_shell_exit_codes(engine: Engine) -> None:
    await engine.register_dag(dag(
        "codes",
        task("three", "shell", params={"cmd": ["sh", "-c", "exit 3"]},
             retry={**RETRY5, "nonRetryable": [3, 4]}),
        task("five", "shell", params={"cmd": ["sh", "-c", "exit 5"]},
             retry={"maxAttempts": 2, "backoffSecs": 0, "nonRetryable": [3, 4]}),
    ))
    inst = await engine.run_dag("codes", wait=30)
    by = {t.task_id: t for t in inst.tasks}
    assert by["three"].attempts == 1
    assert by["three"].reason == ("exit code 3 (nothing on stderr) (not retried: exit code 3 is"
                                  " listed in retry.nonRetryable)")
    assert by["five"].attempts == 2


class _Status(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        status = int(self.path.rsplit("/", 1)[1])
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no")


@pytest.fixture
def status_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("status", "listed", "attempts", "why"),
    [
        (404, None, 1, "HTTP status 404 is a client error"),
        (400, None, 1, "HTTP status 400 is a client error"),
        (408, None, 3, None),
        (429, None, 3, None),
        (503, None, 3, None),
        (503, [503], 1, "HTTP status 503 is listed in retry.nonRetryable"),
        (404, [503], 3, None),
        (404, ["SomeError"], 1, "HTTP status 404 is a client error"),
    ],
)
async def test_http_statuses(engine: Engine, status_server: str, status: int,
                             listed: list[Any] | None, attempts: int, why: str | None) -> None:
    retry: dict[str, Any] = {"maxAttempts": 3, "backoffSecs": 0}
    if listed is not None:
        retry["nonRetryable"] = listed
    await engine.register_dag(dag("h", task("get", "http", params={
        "url": f"{status_server}/status/{status}"}, retry=retry)))
    inst = await engine.run_dag("h", wait=30)
    t = inst.tasks[0]
    assert (t.status, t.attempts) == (TaskStatus.FAILED, attempts)
    if why is None:
        assert "not retried" not in (t.reason or "")
    else:
        assert f"(not retried: {why}" in (t.reason or "")


async def test_without_a_retry_policy_the_reason_is_unchanged(engine: Engine,
                                                             status_server: str) -> None:
    await engine.register_dag(dag("plain", task("get", "http", params={
        "url": f"{status_server}/status/404"})))
    inst = await engine.run_dag("plain", wait=30)
    assert inst.tasks[0].attempts == 1
    assert "not retried" not in (inst.tasks[0].reason or "")


@pytest.mark.parametrize(
    ("listed", "message"),
    [
        (["not a name"], "'not a name' is not an exception class name"),
        ([True], "True is neither an exception class name nor a code"),
        ([1000], "1000 is neither an exit code (0-255) nor an HTTP status"),
        ({"a": 1}, "nonRetryable"),
    ],
)
async def test_bad_non_retryable_lists_are_refused(engine: Engine, listed: Any,
                                                   message: str) -> None:
    from tideflow import DefinitionError

    with pytest.raises(DefinitionError) as caught:
        await engine.register_dag(dag("bad", task("a", "shell", params={"cmd": ["true"]},
                                                  retry={"nonRetryable": listed})))
    assert message in str(caught.value)
