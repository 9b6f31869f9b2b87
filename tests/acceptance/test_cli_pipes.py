"""What the client verbs print into a pipe: nothing wrapped, cut or coloured, whatever the
width of the terminal they were started from (``COLUMNS``); ``dag show`` stays YAML."""

from __future__ import annotations

import json
import re
import time

import yaml

from .clihelp import Cli

LONG_DAG = "a-dag-whose-id-runs-well-past-eighty-columns-" + "x" * 60
LONG_TAG = "a tag value long enough to wrap any table column: " + "y" * 80
DEFINITION = f"""
id: {LONG_DAG}
desc: "{'a description far longer than one line of a terminal, ' * 4}"
cron: "30 2 * * *"
timezone: Europe/Paris
vars:
  emoji: {{defaultValue: ":rocket: [red]not markup[/red]"}}
tasks:
  - id: first
    actionName: shell
    params: {{cmd: ["echo", "{'an argument that goes on and on ' * 5}"]}}
  - id: gate
    actionName: approval
    dependOn: [first]
"""
ANSI = re.compile(r"\x1b\[")
LONG_NODE = "a-worker-node-with-a-name-longer-than-any-terminal-is-wide-" + "z" * 50


def _ok(proc: object) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr  # type: ignore[attr-defined]
    out: str = proc.stdout  # type: ignore[attr-defined]
    assert not ANSI.search(out), out
    return out


def test_piped_output_is_whole(cli: Cli) -> None:
    # a narrow terminal that the output must not be fitted to, and colour asked for by TERM
    cli.env.update(COLUMNS="40", TERM="xterm-256color")
    cli.env.pop("FORCE_COLOR", None)
    server = cli.popen("server", "--node-id", LONG_NODE)
    try:
        _piped(cli)
    finally:
        server.terminate()
        server.wait(20)


def _piped(cli: Cli) -> None:
    deadline = time.monotonic() + 30
    while LONG_NODE not in _ok(cli.run("node", "list", "--json")):
        assert time.monotonic() < deadline, "the server did not join"
        time.sleep(0.3)
    nodes = _ok(cli.run("node", "list")).strip().splitlines()
    assert len(nodes) == 2, nodes
    assert LONG_NODE in nodes[1] and "approval" in nodes[1] and "shell" in nodes[1]

    path = cli.write("long.yaml", DEFINITION)
    _ok(cli.run("dag", "apply", str(path)))

    shown = _ok(cli.run("dag", "show", LONG_DAG, "--next", "3"))
    doc = yaml.safe_load(shown)  # the whole output is YAML: the rest is comments
    as_json = json.loads(_ok(cli.run("dag", "show", LONG_DAG, "--next", "3", "--json")))
    assert doc == as_json["definition"]
    assert doc["vars"]["emoji"]["defaultValue"] == ":rocket: [red]not markup[/red]"
    assert f"# DAG {LONG_DAG} version 1" in shown
    assert len(re.findall(r"^#   \d{4}-\d\d-\d\dT02:30:00\+0[12]:00$", shown, re.M)) == 3
    assert len(as_json["nextFireTimes"]) == 3

    table = _ok(cli.run("dag", "list"))
    assert LONG_DAG in table and "30 2 * * *" in table
    assert len(table.strip().splitlines()) == 2  # a header and one row: nothing wrapped

    run = cli.run("dag", "run", LONG_DAG, "--tag", f"why={LONG_TAG}", "--wait", "20", "--json")
    inst = json.loads(_ok(run))
    assert inst["status"] == "blocked"
    listed = _ok(cli.run("ins", "list"))
    rows = listed.strip().splitlines()
    assert len(rows) == 2, listed
    assert inst["id"] in rows[1] and LONG_DAG in rows[1] and LONG_TAG in rows[1]

    detail = _ok(cli.run("ins", "show", inst["id"]))
    assert f"instance {inst['id']} of {LONG_DAG}: blocked" in detail
    assert f"why={LONG_TAG}" in detail
    assert inst["worker"] == LONG_NODE
