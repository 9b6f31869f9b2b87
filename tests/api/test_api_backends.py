"""One end-to-end pass over the API on each backend the server runs on (SQLite, PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .dags import APPROVAL_YAML, chain
from .harness import ApiServer


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiServer]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    srv = ApiServer(url, tmp_path).start()
    yield srv
    srv.stop()


def test_end_to_end(backend_server: ApiServer) -> None:
    with backend_server.client() as c:
        assert c.get("/readyz").status_code == 200
        r = c.post("/api/v1/dags", content=APPROVAL_YAML.format(id="e2e"),
                   headers={"content-type": "application/yaml"})
        assert r.status_code == 201, r.text
        assert c.post("/api/v1/dags", json=chain("e2e-bad", "fail")).status_code == 201
        assert c.post("/api/v1/dags", json=chain("nope", "nope")).status_code == 422

        blocked = c.post("/api/v1/dags/e2e/run", json={"tags": {"env": "t"}, "wait": 10}).json()
        assert blocked["status"] == "blocked"
        failed = c.post("/api/v1/dags/e2e-bad/run", json={"tags": {"env": "t"}, "wait": 10})
        assert failed.json()["status"] == "failed"
        page = c.get("/api/v1/dag-instances", params={"tag": "env=t", "limit": 1}).json()
        assert len(page["items"]) == 1 and page["nextCursor"]
        rest = c.get("/api/v1/dag-instances",
                     params={"tag": "env=t", "limit": 1, "cursor": page["nextCursor"]}).json()
        assert rest["items"][0]["id"] == blocked["id"] and rest["nextCursor"] is None
        conflict = c.post(f"/api/v1/dag-instances/{failed.json()['id']}/pause")
        assert conflict.status_code == 409
        assert c.delete("/api/v1/dags/e2e").status_code == 409
        r = c.post(f"/api/v1/dag-instances/{blocked['id']}/continue", json={"wait": 10})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            inst = c.get(f"/api/v1/dag-instances/{blocked['id']}").json()
            if inst["status"] == "success":
                break
            time.sleep(0.05)
        assert inst["status"] == "success"
        assert c.delete("/api/v1/dags/e2e").status_code == 204
        assert c.get("/api/v1/nodes").json()["items"][0]["isLeader"] is True
