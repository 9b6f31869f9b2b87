"""Bearer tokens over a real server, token configuration, and the safe-by-default bind rule."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow import Engine, EngineSettings, InputError
from tideflow.api import ApiAuth, ApiToken, check_bind, create_app, is_loopback, serve

from .dags import chain
from .harness import ApiServer

RW, RO = "rw-token-0123456789", "ro-token-0123456789"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("auth")
    srv = ApiServer(f"sqlite:///{tmp / 'auth.db'}", tmp, tokens=[RW, f"{RO}:ro"]).start()
    yield srv
    srv.stop()


def test_tokens_required_read_only_may_only_get(secured: ApiServer) -> None:
    with secured.client() as anon:
        assert anon.get("/healthz").status_code == 200  # liveness stays open
        for method, path in (("GET", "/api/v1/dags"), ("GET", "/readyz"), ("GET", "/metrics"),
                             ("GET", "/api/v1/openapi.json"), ("POST", "/api/v1/dags")):
            r = anon.request(method, path)
            assert r.status_code == 401, (method, path)
            assert r.json()["error"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
    with secured.client("not-a-token") as wrong:
        assert wrong.get("/api/v1/dags").status_code == 401
    with secured.client(RO) as ro:
        assert ro.get("/api/v1/dags").status_code == 200
        assert ro.get("/metrics").status_code == 200
        r = ro.post("/api/v1/dags", json=chain("auth-dag", "ok"))
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert ro.delete("/api/v1/dags/x").status_code == 403
    with secured.client(RW) as rw:
        assert rw.post("/api/v1/dags", json=chain("auth-dag", "ok")).status_code == 201
        r = rw.post("/api/v1/dags/auth-dag/run", json={"wait": 10})
        assert r.status_code == 201 and r.json()["status"] == "success"
        doc = rw.get("/api/v1/openapi.json").json()
        assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_token_sources(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text("# comment\n\nalpha\nbeta:ro\ngamma:rw\n")
    auth = ApiAuth.from_sources(token_file=file, token_env="TF_TOKENS",
                                environ={"TF_TOKENS": "delta:ro, epsilon"})
    assert auth.tokens == (ApiToken("alpha"), ApiToken("beta", True), ApiToken("gamma"),
                           ApiToken("delta", True), ApiToken("epsilon"))
    assert auth.check("Bearer alpha", "POST") is None
    assert auth.check("bearer beta", "GET") is None
    failure = auth.check("Bearer beta", "POST")
    assert failure is not None and failure.status == 403
    assert auth.check(None, "GET") is not None
    assert "alpha" not in repr(auth.tokens)  # never printed
    with pytest.raises(InputError, match="no token"):
        ApiAuth.from_sources(token_env="TF_TOKENS", environ={})
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(InputError, match="no token"):
        ApiAuth.from_sources(token_file=empty)
    with pytest.raises(InputError, match="cannot read"):
        ApiAuth.from_sources(token_file=tmp_path / "missing")
    assert not ApiAuth().enabled


def test_refuses_public_bind_without_tokens(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", ApiAuth(["a-token"]))
    with pytest.raises(InputError, match="without authentication"):
        check_bind("0.0.0.0", ApiAuth())

    async def go() -> None:
        settings = EngineSettings(node_id="bind-test")
        async with Engine.from_url(f"sqlite:///{tmp_path / 'b.db'}", settings=settings) as e:
            app = create_app(e)
            with pytest.raises(InputError, match="without authentication"):
                await serve(app, "0.0.0.0", 0, stop=asyncio.Event())

    asyncio.run(go())


def test_the_documented_token_file_reads_as_documented(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "http-api.md").read_text()
    block = re.search(r"```text\n(# /etc/tideflow/tokens\n.*?)```", doc, re.S)
    assert block, "the token file example is gone from docs/http-api.md"
    path = tmp_path / "tokens"
    path.write_text(block.group(1))
    tokens = ApiAuth.from_sources(token_file=path).tokens
    assert [(t.value, t.read_only) for t in tokens] == [
        ("3f9c1e0b7d2a4c51a8e6f0b2c9d7e4a1", False),
        ("7b2e4d6f8a0c1e3f5a7b9d1f3e5c7a9b", True),
    ]
    # a '#' inside a token (no whitespace before it) is part of the token
    path.write_text("abc#def:ro\t# a comment\n   # indented comment\n")
    assert [(t.value, t.read_only) for t in ApiAuth.from_sources(token_file=path).tokens] == [
        ("abc#def", True)]
