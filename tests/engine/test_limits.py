"""Size limits and writes the database refuses, on each backend: a task that produces a value
too large to store fails with a reason naming the limit, the instance reaches a final state,
and other instances and branches are not held up."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tideflow import (
    ActionContext,
    Engine,
    InstanceStatus,
    LimitError,
    TaskStatus,
)
from tideflow.store.url import make_store

from .dags import dag, task

MIB = 1024 * 1024


def _actions(engine: Engine) -> None:
    async def put(ctx: ActionContext, params: Any) -> None:
        ctx.share_data[params["key"]] = "x" * int(params["size"])

    async def noisy(ctx: ActionContext, params: Any) -> None:
        for _ in range(int(params["lines"])):
            ctx.trace("y" * int(params["size"]))

    async def fail_with(ctx: ActionContext, params: Any) -> None:
        # the surrogate is made here: a definition holding one is refused at registration
        raise RuntimeError(params["text"].replace("<surrogate>", "\ud800"))

    async def ok(ctx: ActionContext, params: Any) -> None:
        ctx.share_data["ok"] = "yes"

    engine.actions.add_function("put", put)
    engine.actions.add_function("noisy", noisy)
    engine.actions.add_function("fail_with", fail_with)
    engine.actions.add_function("ok", ok)


async def _stored(url: str, iid: str) -> Any:
    store = make_store(url)
    await store.open()
    try:
        return await store.get_instance(iid)
    finally:
        await store.close()


async def test_oversized_share_value_fails_its_task(db_url: str,
                                                    make_engine: Callable[..., Engine]) -> None:
    async with make_engine(db_url) as engine:
        _actions(engine)
        await engine.register_dag(dag(
            "big", task("put", "put", params={"key": "blob", "size": str(2 * MIB)}),
            task("other", "ok")))
        inst = await asyncio.wait_for(engine.run_dag("big", wait=30), 60)
        assert inst.status == InstanceStatus.FAILED
        put = next(t for t in inst.tasks if t.task_id == "put")
        assert put.status == TaskStatus.FAILED
        assert "max_value_bytes" in (put.reason or "") and "2 MiB" in (put.reason or "")
        assert "blob" not in inst.share_data and inst.share_data["ok"] == "yes"
    stored = await _stored(db_url, inst.id)
    assert stored.status == InstanceStatus.FAILED and "blob" not in stored.share_data


async def test_share_data_total_is_bounded(make_engine: Callable[..., Engine]) -> None:
    async with make_engine(max_value_bytes=64 * 1024, max_share_data_bytes=100 * 1024) as engine:
        _actions(engine)
        await engine.register_dag(dag(
            "many", task("a", "put", params={"key": "a", "size": "60000"}),
            task("b", "put", ["a"], params={"key": "b", "size": "60000"})))
        inst = await engine.run_dag("many", wait=30)
        assert inst.status == InstanceStatus.FAILED
        b = next(t for t in inst.tasks if t.task_id == "b")
        assert "max_share_data_bytes" in (b.reason or "")
        assert set(inst.share_data) == {"a"}


async def test_traces_are_cut_not_failed(db_url: str, make_engine: Callable[..., Engine]) -> None:
    async with make_engine(db_url, max_value_bytes=256 * 1024, max_trace_bytes=4096) as engine:
        _actions(engine)
        await engine.register_dag(dag(
            "chatty", task("n", "noisy", params={"lines": "400", "size": "100000"})))
        inst = await asyncio.wait_for(engine.run_dag("chatty", wait=30), 60)
        assert inst.status == InstanceStatus.SUCCESS
    stored = await _stored(db_url, inst.id)
    traces = stored.tasks[0].traces
    assert traces and all(len(t.message.encode()) <= 4096 for t in traces)
    assert "cut" in traces[-1].message
    assert sum(len(t.message.encode()) for t in traces) <= 256 * 1024


async def test_unstorable_text_in_a_reason(db_url: str,
                                           make_engine: Callable[..., Engine]) -> None:
    """A NUL (refused by PostgreSQL text), a lone surrogate (refused by every UTF-8 column) and
    a huge message in an exception: the task still fails with a readable, bounded reason."""
    async with make_engine(db_url) as engine:
        _actions(engine)
        await engine.register_dag(dag(
            "odd",
            task("a", "fail_with", params={"text": "nul\x00here <surrogate> " + "z" * 100_000})))
        inst = await asyncio.wait_for(engine.run_dag("odd", wait=30), 60)
        assert inst.status == InstanceStatus.FAILED
    stored = await _stored(db_url, inst.id)
    reason = stored.tasks[0].reason or ""
    assert stored.status == InstanceStatus.FAILED
    assert "nul\\x00here \ufffd" in reason and len(reason.encode()) <= 16 * 1024


async def test_oversized_params_and_vars(make_engine: Callable[..., Engine]) -> None:
    async with make_engine(max_value_bytes=4096) as engine:
        _actions(engine)
        await engine.register_dag(dag(
            "p", task("a", "ok"), task("b", "ok", ["a"], params={"v": "{{ 'q' * 5000 }}"}),
            vars={"v": {"defaultValue": ""}}))
        inst = await engine.run_dag("p", wait=30)
        b = next(t for t in inst.tasks if t.task_id == "b")
        assert b.status == TaskStatus.FAILED and "max_value_bytes" in (b.reason or "")
        before = await engine.list_instances()
        with pytest.raises(LimitError, match="run var 'v'.*max_value_bytes"):
            await engine.run_dag("p", {"v": "w" * 5000})
        assert len(await engine.list_instances()) == len(before)


class _Endless:
    """An HTTP server whose response body is 24 MiB sent in chunks; it counts what it sent
    before the client hung up."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sent = 0
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                chunk = b"x" * 65536
                frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
                try:
                    for _ in range(24 * 16):
                        conn.sendall(frame)
                        self.sent += len(chunk)
                    conn.sendall(b"0\r\n\r\n")
                except OSError:
                    pass


@pytest.fixture
def endless() -> Iterator[_Endless]:
    server = _Endless()
    yield server
    server.sock.close()


async def test_http_body_read_stops_at_the_limit(make_engine: Callable[..., Engine],
                                                 endless: _Endless) -> None:
    async with make_engine() as engine:
        await engine.register_dag(dag("fetch", task(
            "get", "http", params={"url": f"http://127.0.0.1:{endless.port}/", "saveAs": "body"})))
        inst = await engine.run_dag("fetch", wait=30)
    get = inst.tasks[0]
    assert get.status == TaskStatus.FAILED
    assert "1 MiB (max_value_bytes)" in (get.reason or "") and "'body'" in (get.reason or "")
    # the client stopped reading: far less than the 24 MiB was sent
    assert endless.sent < 16 * MIB
    assert "body" not in inst.share_data


async def test_shell_save_limit_follows_the_setting(make_engine: Callable[..., Engine]) -> None:
    async with make_engine(max_value_bytes=8192) as engine:
        await engine.register_dag(dag("sh", task(
            "s", "shell", params={"cmd": ["sh", "-c", "head -c 10000 /dev/zero | tr '\\0' a"],
                                  "saveAs": "out"})))
        inst = await engine.run_dag("sh", wait=30)
    assert inst.tasks[0].status == TaskStatus.FAILED
    assert "8 KiB (max_value_bytes)" in (inst.tasks[0].reason or "")


def test_a_bad_limit_is_refused(make_engine: Callable[..., Engine]) -> None:
    from tideflow import InputError

    with pytest.raises(InputError, match="max_value_bytes"):
        make_engine(max_value_bytes=0)
