"""Facts the docs state that the code decides: kept in step by tests, not by care."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tideflow import Engine, EngineSettings
from tideflow.serialize import instance_to_json
from tideflow.store.sql.schema import build_tables

from .blocks import ROOT, json_keys


def test_storage_page_lists_every_table() -> None:
    """docs/storage.md's table of tables names every table the schema creates, and no other."""
    page = (ROOT / "docs" / "storage.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(tf_[a-z_]+)` \|", page, re.M))
    tables = build_tables("tf_")
    created = {t.name for t in tables.metadata.sorted_tables} | {tables.version_table}
    assert created - listed == set(), f"docs/storage.md does not describe {created - listed}"
    gone = listed - created
    assert gone == set(), f"docs/storage.md describes tables that do not exist: {gone}"


def test_api_page_names_every_json_key() -> None:
    """docs/api.md's JSON example is checked against a real run (test_doc_blocks); its prose
    must name every key of it too."""
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    start = page.index("<!-- doc: prints-json -->")
    body = page[page.index("```json\n", start) + 8 : page.index("```\n", start + 30)]
    named = set(re.findall(r"`([A-Za-z]+)`", page))
    keys = {path.rsplit(".", 1)[-1] for path in json_keys(json.loads(body))}
    keys -= {"region", "token", "clusterId", "team", "cmd", "exitCode"}  # example data
    assert keys - named == set(), f"docs/api.md never names {sorted(keys - named)}"


async def test_http_api_instance_shape_has_every_key_of_the_real_json(tmp_path: Path) -> None:
    """docs/http-api.md's instance shape (and its list item) has the keys the serializer
    gives a real instance, no more and no fewer."""
    page = (ROOT / "docs" / "http-api.md").read_text(encoding="utf-8")
    start = page.index("### The instance shape")
    body = page[page.index("```json\n", start) + 8 : page.index("\n```\n", start)]
    shown = json.loads(body)
    url = f"sqlite:///{tmp_path / 'shape.db'}"
    async with Engine.from_url(url, settings=EngineSettings(node_id="node-1")) as engine:
        await engine.register_dag({"id": "hello", "tasks": [
            {"id": "greet", "actionName": "shell", "params": {"cmd": ["echo", "hello"]}},
            {"id": "approve", "actionName": "approval", "dependOn": ["greet"]}]})
        real = instance_to_json(await engine.run_dag("hello", tags={"team": "infra"}, wait=30))
    data = {"$.vars.name", "$.tags.team", "$.tasks[].params.cmd", "$.tasks[].output.exitCode"}
    assert json_keys(shown) - data == json_keys(real) - data
    listed = page.index("```json\n", page.index("### `GET /api/v1/dag-instances`"))
    item = json.loads(page[listed + 8 : page.index("\n```\n", listed)])["items"][0]
    assert set(item) == set(real)
