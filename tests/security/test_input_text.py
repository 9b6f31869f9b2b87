"""Text no task could be given, and no store could hold, is refused where it enters — before
anything is stored: a lone UTF-16 surrogate (JSON's "\\ud800") anywhere, a NUL in a run var."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.harness import ApiServer
from tideflow import DefinitionError
from tideflow.definition.loader import load_dag_dict
from tideflow.errors import InputError
from tideflow.vars import resolve_run_vars


def _dag(default: Any = "", var: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "d", "vars": {"k": {"defaultValue": default, **(var or {})}},
            "tasks": [{"id": "t", "actionName": "shell", "params": {"cmd": "true"}}]}


@pytest.mark.parametrize("value,what", [
    ("a\x00b", "NUL"), ("\ud800", "surrogate"), ("ok\udcff", "surrogate"),
])
def test_run_vars_with_unusable_text_are_refused(value: str, what: str) -> None:
    dag = load_dag_dict(_dag())
    with pytest.raises(InputError, match=f"run var 'k' holds a .*{what}"):
        resolve_run_vars(dag, {"k": value})
    typed = load_dag_dict(_dag(None, {"type": "list"}))
    escaped = '["\\u0000"]' if what == "NUL" else '["\\ud800"]'
    with pytest.raises(InputError, match=what):
        resolve_run_vars(typed, {"k": escaped})


def test_a_definition_with_a_lone_surrogate_is_refused_naming_the_field() -> None:
    with pytest.raises(DefinitionError, match=r"vars\.k\.defaultValue holds a lone UTF-16"):
        load_dag_dict(_dag("x\ud800"))
    doc = _dag()
    doc["tasks"][0]["params"]["cmd"] = "echo \ud800"
    with pytest.raises(DefinitionError, match="surrogate"):
        load_dag_dict(doc)


def test_over_http_nothing_is_stored_and_listings_keep_working(tmp_path: Path) -> None:
    server = ApiServer(f"sqlite:///{tmp_path / 'api.db'}", tmp_path).start()
    try:
        with server.client() as c:
            raw = '{"id": "d", "vars": {"k": {"defaultValue": "\\ud800"}}, "tasks": [' \
                  '{"id": "t", "actionName": "shell", "params": {"cmd": "true"}}]}'
            r = c.post("/api/v1/dags", content=raw,
                       headers={"content-type": "application/json"})
            assert r.status_code in (400, 422) and "defaultValue" in r.text, r.text
            assert c.post("/api/v1/dags", json=_dag()).status_code == 201
            for body in ('{"vars": {"k": "\\ud800"}}', '{"vars": {"k": "a\\u0000b"}}'):
                r = c.post("/api/v1/dags/d/run", content=body,
                           headers={"content-type": "application/json"})
                assert r.status_code in (400, 422) and "run var 'k'" in r.text, r.text
            for path in ("/api/v1/dags", "/api/v1/dag-instances"):
                listed = c.get(path)
                assert listed.status_code == 200, listed.text
            assert c.get("/api/v1/dag-instances").json()["items"] == []
    finally:
        server.stop()
