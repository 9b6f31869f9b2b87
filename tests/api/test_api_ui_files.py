"""The web UI's static files: served at /ui without a token, shipped in the package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow.ui import STATIC_DIR

from .harness import ApiServer


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp: Path = tmp_path_factory.mktemp("ui-files")
    srv = ApiServer(f"sqlite:///{tmp / 'ui.db'}", tmp, tokens=["tok"]).start()
    yield srv
    srv.stop()


def test_the_files_exist() -> None:
    assert {p.name for p in STATIC_DIR.iterdir()} >= {"index.html", "app.js", "style.css"}


def test_ui_is_served_without_a_token_but_the_api_is_not(token_server: ApiServer) -> None:
    with token_server.client() as anon:
        r = anon.get("/ui", follow_redirects=True)
        assert r.status_code == 200 and "app.js" in r.text
        assert anon.get("/ui/app.js").status_code == 200
        assert anon.get("/ui/style.css").headers["content-type"].startswith("text/css")
        assert anon.get("/ui/nope.js").status_code == 404
        assert anon.get("/api/v1/dags").status_code == 401
        assert anon.get("/uix").status_code == 401
