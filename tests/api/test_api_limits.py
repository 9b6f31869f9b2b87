"""Oversized and hostile request bodies: refused quickly with a clear JSON error, nothing
written, and the server stays healthy.

The server here keeps the production default body limit (10 MiB). Bodies are sent over a raw
socket so a refusal can be seen while the client is still sending (as a real client would)."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tideflow.api.app import DEFAULT_MAX_BODY

from .harness import ApiServer

BIG = 50 * 1024 * 1024
CHUNK = 1024 * 1024
LIMIT_TEXT = f"{DEFAULT_MAX_BODY:,} bytes"


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp: Path = tmp_path_factory.mktemp("api-limits")
    srv = ApiServer(f"sqlite:///{tmp / 'api.db'}", tmp, node_id="limits-node",
                    max_body=DEFAULT_MAX_BODY).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(big_server: ApiServer) -> Iterator[httpx.Client]:
    with big_server.client() as c:
        yield c


def send_raw(url: str, path: str, content_type: str, *, chunked: bool,
             total: int = BIG, filler: bytes = b" ") -> tuple[int, dict[str, Any], int]:
    """POST ``total`` bytes (a JSON or YAML prefix, then ``filler``), stopping as soon as the
    server answers. Returns (status, JSON body, bytes sent)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    try:
        head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}",
                f"Content-Type: {content_type}", "Connection: close"]
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        piece = filler * (CHUNK // len(filler))
        sent = 0
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server answered before the body was complete
            data = piece[: total - sent]
            try:
                if chunked:
                    sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                else:
                    sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break  # it answered and closed: read what it said
            sent += len(data)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        return (*read_response(sock), sent)
    finally:
        sock.close()


def read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    raw = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        raw += data
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def assert_too_large(status: int, body: dict[str, Any], sent: int) -> None:
    assert status == 413
    assert body["error"] == "body_too_large"
    assert LIMIT_TEXT in body["message"], body
    # refused once the limit was passed, not after reading all 50 MB; what the sender got rid
    # of beyond the limit sat in the two sockets' kernel buffers, which grow to several MB on
    # loopback when the server reads slowly (a busy machine)
    assert sent <= DEFAULT_MAX_BODY + 24 * CHUNK < BIG


def assert_healthy_and_unchanged(api: httpx.Client, dag_id: str) -> None:
    assert api.get("/healthz").status_code == 200
    assert api.get(f"/api/v1/dags/{dag_id}").status_code == 404
    listed = api.get("/api/v1/dag-instances", params={"dagId": "limits-ok"}).json()["items"]
    assert listed == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_50mb_definition_is_refused_with_413(big_server: ApiServer, api: httpx.Client,
                                               chunked: bool) -> None:
    start = time.monotonic()
    status, body, sent = send_raw(big_server.url, "/api/v1/dags", "application/yaml",
                                  chunked=chunked, filler=b"id: huge\n# padding padding\n")
    assert_too_large(status, body, sent)
    assert time.monotonic() - start < 30
    assert_healthy_and_unchanged(api, "huge")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_run_with_50mb_of_vars_is_refused_with_413(big_server: ApiServer, api: httpx.Client,
                                                     chunked: bool) -> None:
    applied = api.post("/api/v1/dags", json={"id": "limits-ok", "vars": {"v": "x"},
                                             "tasks": [{"id": "a", "actionName": "ok"}]})
    assert applied.status_code in (200, 201), applied.text  # 200: applied unchanged before
    status, body, sent = send_raw(big_server.url, "/api/v1/dags/limits-ok/run",
                                  "application/json", chunked=chunked,
                                  filler=b'{"vars": {"v": "' + b"x" * 1000)
    assert_too_large(status, body, sent)
    assert_healthy_and_unchanged(api, "never-applied")


def test_a_declared_content_length_over_the_limit_is_refused_before_the_body(
    big_server: ApiServer,
) -> None:
    parts = urlsplit(big_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            f"POST /api/v1/dags HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/yaml\r\nContent-Length: {BIG}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        status, body = read_response(sock)  # not one byte of the body was sent
    assert_too_large(status, body, 0)


def test_a_body_just_under_the_limit_with_very_many_vars_is_a_clear_400(
    api: httpx.Client,
) -> None:
    applied = api.post("/api/v1/dags", json={"id": "limits-ok", "vars": {"v": "x"},
                                             "tasks": [{"id": "a", "actionName": "ok"}]})
    assert applied.status_code in (200, 201)  # 200: the same definition applied before
    many = {f"var{i}": "y" * 60 for i in range(100_000)}  # about 8 MB of JSON
    answer = api.post("/api/v1/dags/limits-ok/run", json={"vars": many})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_input"
    assert "'var0'" in body["message"] and "99,980 more" in body["message"]
    assert "not declared by DAG 'limits-ok'" in body["message"]
    assert len(answer.content) < 10_000
    assert_healthy_and_unchanged(api, "never-applied")


@pytest.mark.parametrize("depth", [100, 10_000])
def test_deeply_nested_vars_are_a_clear_400(api: httpx.Client, depth: int) -> None:
    api.post("/api/v1/dags", json={"id": "limits-ok", "vars": {"v": "x"},
                                   "tasks": [{"id": "a", "actionName": "ok"}]})
    body = '{"vars": {"v": ' + "[" * depth + "]" * depth + "}}"
    answer = api.post("/api/v1/dags/limits-ok/run", content=body,
                      headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] in ("invalid_input", "invalid_request")
    assert len(answer.content) < 10_000
    assert_healthy_and_unchanged(api, "never-applied")


@pytest.mark.parametrize(("content_type", "text"), [
    ("application/json", '{"id": "deep", "tasks": [{"id": "a", "actionName": "ok", "params": '
                         + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}]}"),
    ("application/yaml", "id: deep\ntasks: [{id: a, actionName: ok, params: "
                         + "[" * 10_000 + "]" * 10_000 + "}]\n"),
    ("application/yaml", "id: deep\ntasks:\n  - id: a\n    actionName: ok\n    params:\n"
                         "      a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
                         + "".join(f"      a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10)
                                   + "]\n" for i in range(1, 10))),
])  # fmt: skip
def test_hostile_definitions_are_a_clear_422(api: httpx.Client, content_type: str,
                                             text: str) -> None:
    start = time.monotonic()
    answer = api.post("/api/v1/dags", content=text, headers={"Content-Type": content_type})
    assert time.monotonic() - start < 30
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_definition"
    assert body["message"].startswith("<api body>: ")
    assert len(answer.content) < 10_000
    assert_healthy_and_unchanged(api, "deep")


def test_too_many_tasks_are_a_clear_422(api: httpx.Client) -> None:
    tasks = [{"id": f"t{i}", "actionName": "ok"} for i in range(20_001)]
    answer = api.post("/api/v1/dags", json={"id": "wide", "tasks": tasks})
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"] == (
        "<api body>: has 20,001 tasks, more than the limit of 20,000 — split it into smaller DAGs"
    )
    assert_healthy_and_unchanged(api, "wide")
