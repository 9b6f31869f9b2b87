"""``--table-prefix`` (or ``TIDEFLOW_TABLE_PREFIX``) on every command that opens the database:
a deployment under its own prefix is seen by each verb, and the default prefix's tables,
in the same database, are not touched."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from .clihelp import Cli

GATE = """
id: gated
tasks:
  - {id: first, actionName: shell, params: {cmd: ["true"]}}
  - {id: approve, actionName: approval, dependOn: [first]}
"""
PREFIX = ["--table-prefix", "alt_"]


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    data: dict[str, object] = json.loads(_ok(proc).stdout)
    return data


def _run_prefixed(cli: Cli) -> dict[str, object]:
    """`db upgrade` and `run` under the prefix (the latter from the environment variable),
    stopping where a person must act; the default prefix's deployment stays empty."""
    gate = cli.write("gated.yaml", GATE)
    assert "schema is current" in _ok(cli.run("db", "upgrade", *PREFIX)).stdout
    env_run = cli.run("run", str(gate), "--no-wait-blocked", "--json",
                      env_extra={"TIDEFLOW_TABLE_PREFIX": "alt_"})
    assert env_run.returncode == 3, env_run.stderr
    first: dict[str, object] = json.loads(env_run.stdout)
    listed = _json(cli.run("ins", "list", "--json", *PREFIX))
    assert [i["id"] for i in listed["items"]] == [first["id"]]  # type: ignore[attr-defined]
    # the default prefix is another deployment in the same database: empty
    assert _json(cli.run("ins", "list", "--json"))["items"] == []
    assert _json(cli.run("dag", "list", "--json"))["items"] == []
    return first


@pytest.mark.parametrize("backend", [pytest.param("mysql", marks=pytest.mark.mysql),
                                     pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_prefix_on_server_databases(cli: Cli, backend: str, request: pytest.FixtureRequest
                                    ) -> None:
    fixture = "mysql_url" if backend == "mysql" else "postgres_url"
    cli.env["TIDEFLOW_DB"] = request.getfixturevalue(fixture)
    first = _run_prefixed(cli)
    done = _json(cli.run("ins", "continue", str(first["id"]), "--json", *PREFIX))
    assert done["status"] == "success"


def test_every_verb_sees_the_prefixed_deployment(cli: Cli) -> None:
    gate = cli.write("gated.yaml", GATE)
    first = _run_prefixed(cli)

    assert [d["id"] for d in _json(cli.run("dag", "list", "--json", *PREFIX))["items"]] == [
        "gated"]  # type: ignore[index]
    assert _json(cli.run("dag", "show", "gated", "--json", *PREFIX))["version"] == 1
    assert cli.run("dag", "show", "gated").returncode == 3
    applied = _json(cli.run("dag", "apply", str(gate), "--json", *PREFIX))
    assert applied["version"] == 1 and applied["unchanged"] is True

    done = _json(cli.run("ins", "continue", str(first["id"]), "--json", *PREFIX))
    assert done["status"] == "success"
    shown = _json(cli.run("ins", "show", str(first["id"]), "--json", *PREFIX))
    assert shown["status"] == "success"
    assert cli.run("ins", "show", str(first["id"])).returncode == 3
    watched = _json(cli.run("ins", "watch", str(first["id"]), "--json", *PREFIX))
    assert watched["status"] == "success"

    second = _json(cli.run("dag", "run", "gated", "--wait", "20", "--json", *PREFIX))
    assert second["status"] == "blocked"
    proc = cli.run("ins", "pause", str(second["id"]), *PREFIX)
    assert proc.returncode == 4 and "blocked" in proc.stderr  # found, in the wrong state
    assert _json(cli.run("ins", "cancel", str(second["id"]), "--json", *PREFIX))[
        "status"] == "canceled"
    assert _json(cli.run("ins", "retry", str(second["id"]), "--wait", "0", "--json",
                         *PREFIX))["id"] == second["id"]
    assert _json(cli.run("node", "list", "--json", *PREFIX))["items"] == []
    _ok(cli.run("dag", "delete", "gated", "--force", *PREFIX))
    assert _json(cli.run("dag", "list", "--json", *PREFIX))["items"] == []


@pytest.mark.cluster
def test_server_joins_the_prefixed_deployment(cli: Cli) -> None:
    cli.env["TIDEFLOW_TABLE_PREFIX"] = "srv_"
    server = cli.popen("server", "--node-id", "prefixed-node")
    try:
        deadline = time.monotonic() + 30
        while True:
            nodes = _json(cli.run("node", "list", "--json"))["items"]
            if [n["nodeId"] for n in nodes] == ["prefixed-node"]:  # type: ignore[attr-defined]
                break
            assert time.monotonic() < deadline, "the server did not join"
            time.sleep(0.3)
        _ok(cli.run("dag", "apply", str(cli.write("gated.yaml", GATE))))
        inst = _json(cli.run("dag", "run", "gated", "--wait", "20", "--json"))
        assert inst["status"] == "blocked" and inst["worker"] == "prefixed-node"
        # the default prefix knows nothing of it
        assert _json(cli.run("node", "list", "--json", "--table-prefix", "tf_"))["items"] == []
    finally:
        server.terminate()
        server.wait(20)


def test_a_bad_prefix_is_refused(cli: Cli) -> None:
    for args in (["ins", "list"], ["db", "upgrade"], ["server"],
                 ["run", str(cli.write("gated.yaml", GATE))]):
        proc = cli.run(*args, "--table-prefix", "no-dashes")
        assert proc.returncode == 2, (args, proc.stderr)
        assert "table prefix 'no-dashes' is invalid" in proc.stderr


def test_every_command_with_db_takes_the_prefix() -> None:
    """A verb added later that opens the database gets the option too."""
    import typer

    from tideflow.cli.main import app

    def walk(cmd: Any, path: str) -> list[tuple[str, Any]]:
        subs = getattr(cmd, "commands", None)
        if subs is not None:  # a group
            return [c for name, sub in subs.items() for c in walk(sub, f"{path} {name}")]
        return [(path, cmd)]

    commands = walk(typer.main.get_command(app), "tideflow")
    with_db = [(path, cmd) for path, cmd in commands
               if any("--db" in p.opts for p in cmd.params)]
    assert len(with_db) >= 15
    for path, cmd in with_db:
        prefix = [p for p in cmd.params if "--table-prefix" in p.opts]
        assert prefix, f"{path} takes --db but not --table-prefix"
        assert getattr(prefix[0], "envvar", None) == "TIDEFLOW_TABLE_PREFIX", path
