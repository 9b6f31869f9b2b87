"""The http action against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from action_probe import Probe, parse
from pydantic import ValidationError

from tideflow.actions.http import HttpAction, HttpParams
from tideflow.errors import ActionError

DOC = {
    "cluster": {"id": "c-42", "size": 3, "ready": True},
    "items": [{"id": "first"}, {"id": "second", "tags": ["a", "b"]}],
    "note": None,
}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)

    def _route(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if url.path == "/doc":
            self._send(200, json.dumps(DOC))
        elif url.path == "/text":
            self._send(200, "  plain text\n", "text/plain")
        elif url.path.startswith("/status/"):
            self._send(int(url.path.rsplit("/", 1)[1]), "oops " + "x" * 1000, "text/plain")
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/doc")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/slow":
            time.sleep(1.0)
            self._send(200, "late", "text/plain")
        else:
            echo = {
                "method": self.command,
                "path": url.path,
                "query": parse_qs(url.query),
                "contentType": self.headers.get("Content-Type"),
                "token": self.headers.get("X-Token"),
                "body": body,
            }
            self._send(200, json.dumps(echo))

    do_GET = do_POST = do_PUT = do_DELETE = _route


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
async def action() -> AsyncIterator[HttpAction]:
    act = HttpAction()
    yield act
    await act.aclose()


def params(**raw: Any) -> HttpParams:
    result: HttpParams = parse(HttpAction(), raw)
    return result


async def test_get_traces_method_url_and_status(
    action: HttpAction, server: str, probe: Probe
) -> None:
    await action.run(probe.ctx, params(url=f"{server}/doc"))
    assert probe.traces == [f"GET {server}/doc -> 200"]
    assert probe.share == {}


async def test_post_json_with_headers_and_query(
    action: HttpAction, server: str, probe: Probe
) -> None:
    p = params(
        method="post",
        url=f"{server}/echo",
        headers={"X-Token": 123},
        query={"a": 1, "b": ["x", "y"]},
        json={"name": "n1", "size": 3},
        saveAs="echo",
    )
    await action.run(probe.ctx, p)
    echo = json.loads(probe.share["echo"])
    assert echo["method"] == "POST"
    assert echo["query"] == {"a": ["1"], "b": ["x", "y"]}
    assert echo["token"] == "123"
    assert echo["contentType"] == "application/json"
    assert json.loads(echo["body"]) == {"name": "n1", "size": 3}


async def test_text_body_is_sent_as_is(action: HttpAction, server: str, probe: Probe) -> None:
    await action.run(
        probe.ctx, params(method="PUT", url=f"{server}/echo", body="raw text", saveAs="e")
    )
    assert json.loads(probe.share["e"])["body"] == "raw text"


async def test_save_as_stores_the_body_text(action: HttpAction, server: str, probe: Probe) -> None:
    await action.run(probe.ctx, params(url=f"{server}/text", saveAs="page"))
    assert probe.share["page"] == "  plain text\n"
    assert probe.written == ["page"]


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        ("cluster.id", "c-42"),
        ("cluster.size", "3"),
        ("cluster.ready", "true"),
        ("items.0.id", "first"),
        ("items.1.tags", '["a", "b"]'),
        ("items.1.tags.1", "b"),
        ("cluster", json.dumps(DOC["cluster"])),
        ("note", "null"),
    ],
)
async def test_save_field(
    action: HttpAction, server: str, probe: Probe, path: str, stored: str
) -> None:
    await action.run(probe.ctx, params(url=f"{server}/doc", saveAs="v", saveField=path))
    assert probe.share["v"] == stored


@pytest.mark.parametrize(
    ("path", "where"),
    [("cluster.name", "cluster"), ("items.5.id", "items"), ("nope", "the top level")],
)
async def test_missing_save_field_names_the_path(
    action: HttpAction, server: str, probe: Probe, path: str, where: str
) -> None:
    with pytest.raises(ActionError, match=f"saveField path '{path}' not found") as caught:
        await action.run(probe.ctx, params(url=f"{server}/doc", saveAs="v", saveField=path))
    assert where in caught.value.message
    assert "v" not in probe.share


async def test_save_field_of_a_non_json_body(action: HttpAction, server: str, probe: Probe) -> None:
    with pytest.raises(ActionError, match="needs a JSON response"):
        await action.run(probe.ctx, params(url=f"{server}/text", saveAs="v", saveField="a"))


async def test_unexpected_status_fails_with_status_and_body_start(
    action: HttpAction, server: str, probe: Probe
) -> None:
    with pytest.raises(ActionError) as caught:
        await action.run(probe.ctx, params(url=f"{server}/status/503"))
    reason = caught.value.message
    assert reason.startswith(f"GET {server}/status/503: status 503, expected 2xx: oops xxx")
    assert reason.endswith("...")
    assert len(reason) < 500
    assert probe.traces == [f"GET {server}/status/503 -> 503"]


async def test_expect_status_single_and_list(action: HttpAction, server: str, probe: Probe) -> None:
    await action.run(probe.ctx, params(url=f"{server}/status/404", expectStatus="404"))
    await action.run(probe.ctx, params(url=f"{server}/status/409", expectStatus=[200, 409]))
    with pytest.raises(ActionError, match="expected 200 or 201"):
        await action.run(probe.ctx, params(url=f"{server}/status/202", expectStatus=[200, 201]))
    with pytest.raises(ActionError, match="status 200, expected 204"):
        await action.run(probe.ctx, params(url=f"{server}/doc", expectStatus=204))


async def test_redirects_are_followed(action: HttpAction, server: str, probe: Probe) -> None:
    await action.run(
        probe.ctx, params(url=f"{server}/redirect", saveAs="v", saveField="cluster.id")
    )
    assert probe.share["v"] == "c-42"
    with pytest.raises(ActionError, match="status 302"):
        await action.run(probe.ctx, params(url=f"{server}/redirect", followRedirects=False))


async def test_connection_refused_names_the_url(action: HttpAction, probe: Probe) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(ActionError, match=f"GET {url}: request failed"):
        await action.run(probe.ctx, params(url=url))


async def test_request_timeout(action: HttpAction, server: str, probe: Probe) -> None:
    with pytest.raises(ActionError, match="no response within timeoutSecs=0.2"):
        await action.run(probe.ctx, params(url=f"{server}/slow", timeoutSecs="0.2"))


async def test_bad_url(action: HttpAction, probe: Probe) -> None:
    with pytest.raises(ActionError, match="GET ftp://example.invalid/"):
        await action.run(probe.ctx, params(url="ftp://example.invalid/"))


async def test_client_is_reused_and_reopened_after_close(server: str, probe: Probe) -> None:
    act = HttpAction()
    await act.run(probe.ctx, params(url=f"{server}/doc"))
    first = act._client
    await act.run(probe.ctx, params(url=f"{server}/doc"))
    assert act._client is first
    await act.aclose()
    await act.run(probe.ctx, params(url=f"{server}/doc"))
    assert act._client is not None and act._client is not first
    await act.aclose()
    await act.aclose()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"url": "http://x", "json": {"a": 1}, "body": "b"}, "either json or body"),
        ({"url": "http://x", "saveField": "a"}, "saveField needs saveAs"),
        ({"url": "http://x", "method": "GE T"}, "not an HTTP method"),
        ({"url": "http://x", "expectedStatus": 200}, "expectedStatus"),
        ({"method": "GET"}, "url"),
    ],
)
def test_params_validation(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        params(**raw)


async def test_output_has_status_headers_and_the_json_body(
    action: HttpAction, server: str, probe: Probe
) -> None:
    out = await action.run(probe.ctx, params(url=f"{server}/doc"))
    assert out["status"] == 200
    assert out["headers"]["content-type"] == "application/json"
    assert out["json"] == DOC
    assert out["text"] is None


async def test_output_of_a_text_body_is_its_text(
    action: HttpAction, server: str, probe: Probe
) -> None:
    out = await action.run(probe.ctx, params(url=f"{server}/text"))
    assert (out["status"], out["json"], out["text"]) == (200, None, "  plain text\n")


async def test_output_of_an_accepted_error_status(
    action: HttpAction, server: str, probe: Probe
) -> None:
    out = await action.run(probe.ctx, params(url=f"{server}/status/404", expectStatus=404))
    assert out["status"] == 404
    assert out["text"].startswith("oops ")
