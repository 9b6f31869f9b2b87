"""The HTTP API: every write route needs a read-write token, tokens are compared in constant
time, no CORS, no public bind without tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tideflow.api.auth as auth_module
from api.harness import REPO, ApiServer
from tideflow import Engine
from tideflow.api import ApiAuth, check_bind, create_app
from tideflow.errors import InputError

RW, RO = "rw-token-7f3a", "ro-token-c81e"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp: Path = tmp_path_factory.mktemp("secured")
    srv = ApiServer(f"sqlite:///{tmp / 'api.db'}", tmp, tokens=[RW, f"{RO}:ro"]).start()
    yield srv
    srv.stop()


def _route_table(tmp_path: Path) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, from its route table (hidden routes too)."""
    app = create_app(Engine.from_url(f"sqlite:///{tmp_path / 'routes.db'}"))
    found: list[tuple[str, str]] = []
    for route in app.routes:
        # FastAPI keeps included routers as one entry that expands to their routes
        expand = getattr(route, "effective_route_contexts", None)
        for r in expand() if expand is not None else [route]:
            methods, path = getattr(r, "methods", None), getattr(r, "path", None)
            if methods and path:
                # `{dag_id:path}` (ids may hold a slash) is `{dag_id}` in the OpenAPI document
                path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)
                found += [(m, path) for m in sorted(methods)]
    assert any(p == "/api/v1/dags/{dag_id}/run" for _, p in found), found
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_every_write_route_needs_a_read_write_token(secured: ApiServer, tmp_path: Path) -> None:
    table = _route_table(tmp_path)
    writes = [(m, p) for m, p in table if m in WRITE_METHODS]
    # the OpenAPI document lists the same write routes: none is hidden from it
    with secured.client(RW) as c:
        doc = c.get("/api/v1/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert set(writes) <= documented
    assert len(writes) >= 12, writes  # apply, delete, run, 5 instance and 6 task commands
    with secured.client() as anon, secured.client(RO) as ro, secured.client("nope") as bad:
        for method, path in writes:
            url = _concrete(path)
            r = anon.request(method, url, json={})
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert bad.request(method, url, json={}).status_code == 401, (method, path)
            r = ro.request(method, url, json={})
            assert r.status_code == 403, (method, path, r.text)
        # reads: the read-only token may, no token may not
        for method, path in table:
            if method == "GET" and path != "/healthz":
                assert anon.get(_concrete(path)).status_code == 401, path
                assert ro.get(_concrete(path)).status_code != 401, path
        # a write with the right token gets through auth (then fails on the missing DAG)
    with secured.client(RW) as c:
        assert c.post("/api/v1/dags/x1/run", json={}).status_code == 404


def test_token_forms_that_must_not_pass(secured: ApiServer) -> None:
    tries: list[dict[str, str]] = [
        {"Authorization": f"Basic {RW}"}, {"Authorization": f"Bearer {RW[:-1]}"},
        {"Authorization": f"Bearer {RW}x"}, {"Authorization": f"Bearer {RW.upper()}"},
        {"Authorization": "Bearer"}, {"Authorization": f"Bearer {RO}:rw"},
        {"X-Api-Token": RW}, {"Cookie": f"token={RW}"},
    ]
    with secured.client() as c:
        for headers in tries:
            r = c.post("/api/v1/dags/x1/run", json={}, headers=headers)
            assert r.status_code == 401, headers
        assert c.get("/api/v1/dags", params={"token": RW}).status_code == 401
        # path tricks do not reach the API through the open /ui and /healthz paths
        for path in ("/ui/../api/v1/dags", "/ui/%2e%2e/api/v1/dags", "/healthz/../api/v1/dags",
                     "/api/v1/dags/../../healthz"):
            r = c.post(path, json={})
            assert r.status_code in (401, 404, 405), (path, r.status_code)
            assert r.status_code != 201


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    real = auth_module.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    auth = ApiAuth(["first", "second:ro", "third"])
    for presented, method, expected in [
        ("first", "POST", None), ("second", "GET", None), ("second", "POST", 403),
        ("fourth", "GET", 401), ("firs", "GET", 401),
    ]:
        calls.clear()
        failure = auth.check(f"Bearer {presented}", method)
        assert (failure.status if failure else None) == expected, presented
        # every configured token is compared, whichever matches, and only by compare_digest
        assert len(calls) == 3, presented


def test_no_cors_headers(secured: ApiServer) -> None:
    evil = "https://evil.example"
    with secured.client(RW) as c:
        r = c.get("/api/v1/dags", headers={"Origin": evil})
        assert r.status_code == 200
        assert not any(k.lower().startswith("access-control-") for k in r.headers)
        pre = c.options("/api/v1/dags/x1/run", headers={
            "Origin": evil, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert not any(k.lower().startswith("access-control-") for k in pre.headers)
    with secured.client() as anon:
        pre = anon.options("/api/v1/dags", headers={
            "Origin": evil, "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 401
        assert "access-control-allow-origin" not in pre.headers


def test_ui_files_are_open_but_its_api_calls_need_the_token(secured: ApiServer) -> None:
    with secured.client() as anon:
        for path in ("/ui/", "/ui/app.js", "/ui/style.css"):
            assert anon.get(path).status_code == 200, path
        assert anon.get("/api/v1/dag-instances").status_code == 401
    app_js = (REPO / "src" / "tideflow" / "ui" / "static" / "app.js").read_text()
    # one way out to the server, which adds the token; the token lives in sessionStorage
    assert app_js.count("fetch(") == 1
    assert "localStorage" not in app_js and "document.cookie" not in app_js
    # a secret var's default is never put into the page (the API shows it as ***)
    assert 'value: v.secret ? ""' in app_js


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.1.2.3", "192.168.0.1",
                                  "example.org", "127.0.0.1.nip.io", "localhost.evil.example"])
def test_no_public_bind_without_tokens(host: str) -> None:
    with pytest.raises(InputError, match="without authentication"):
        check_bind(host, None)
    with pytest.raises(InputError, match="without authentication"):
        check_bind(host, ApiAuth())
    check_bind(host, ApiAuth([RW]))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_loopback_binds_without_tokens(host: str) -> None:
    check_bind(host, None)
