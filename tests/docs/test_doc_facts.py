"""Facts the docs state that the code decides: kept in step by tests, not by care."""

from __future__ import annotations

import json
import re

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
