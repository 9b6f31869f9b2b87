"""The client verbs (`tideflow dag|ins|node`) in subprocesses, against a running server
(`--server`) and straight against its database (`--db`): output shapes and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from api.harness import ApiServer

from .clihelp import Cli

APPROVAL = """
id: gate
cron: "30 2 * * *"
timezone: Europe/Paris
tasks:
  - {id: plan, actionName: ok}
  - {id: approve, actionName: approval, dependOn: [plan]}
  - {id: apply, actionName: ok, dependOn: [approve]}
"""
FAILING = """
id: flop
vars:
  why: {defaultValue: nope}
tasks:
  - {id: a, actionName: ok}
  - {id: b, actionName: fail, dependOn: [a], params: {reason: "{{why}}"}}
"""
SLEEPY = """
id: nap
tasks:
  - {id: zz, actionName: sleep, params: {secs: 30}, timeoutSecs: 60}
  - {id: after, actionName: ok, dependOn: [zz]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("cli-client")
    srv = ApiServer(f"sqlite:///{tmp / 'cli.db'}", tmp, node_id="cli-node").start()
    yield srv
    srv.stop()


@pytest.fixture(params=["server", "db"])
def via(request: pytest.FixtureRequest, server: ApiServer, cli: Cli) -> list[str]:
    """Where the verbs go: the server's HTTP API, or the server's database directly."""
    cli.env.pop("TIDEFLOW_DB", None)
    if request.param == "server":
        return ["--server", server.url]
    return ["--db", server.db_url]


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _id(proc: subprocess.CompletedProcess[str]) -> str:
    return str(Cli.as_json(proc)["id"])


def test_dag_verbs(cli: Cli, via: list[str]) -> None:
    gate = cli.write("gate.yaml", APPROVAL)
    applied = Cli.as_json(_ok(cli.run("dag", "apply", str(gate), "--json", *via)))
    assert applied["id"] == "gate" and applied["definition"]["cron"] == "30 2 * * *"
    v = applied["version"]  # the server's database is shared by both ways
    # the same file again stores nothing; a changed one makes a new version
    out = _ok(cli.run("dag", "apply", str(gate), *via)).stdout
    assert out == f"DAG gate unchanged (version {v})\n"
    again = Cli.as_json(_ok(cli.run("dag", "apply", str(gate), "--json", *via)))
    assert (again["version"], again["unchanged"]) == (v, True)
    cli.write("gate.yaml", APPROVAL.replace("30 2 * * *", "31 2 * * *"))
    out = _ok(cli.run("dag", "apply", str(gate), *via)).stdout
    assert f"applied DAG gate version {v + 1}" in out
    cli.write("gate.yaml", APPROVAL)
    assert f"version {v + 2}" in _ok(cli.run("dag", "apply", str(gate), *via)).stdout

    listed = Cli.as_json(_ok(cli.run("dag", "list", "--json", *via)))
    assert "gate" in {d["id"] for d in listed["items"]}
    table = _ok(cli.run("dag", "list", *via)).stdout
    assert "gate" in table and "30 2 * * *" in table

    shown = _ok(cli.run("dag", "show", "gate", "--next", "3", *via)).stdout
    assert "actionName: approval" in shown
    fires = re.findall(r"^#\s+(\d{4}-\d\d-\d\dT02:30:00\+0[12]:00)$", shown, re.M)
    assert len(fires) == 3, shown  # 02:30 in Paris, on three days in a row
    days = [datetime.fromisoformat(f) for f in fires]
    assert days == sorted(days) and len(set(days)) == 3
    assert Cli.as_json(_ok(cli.run("dag", "show", "gate", "--json", *via)))["id"] == "gate"

    bad = cli.write("bad.yaml", "id: bad\ntasks:\n  - {id: a, actionName: ok, dependOn: [zz]}\n")
    proc = cli.run("dag", "apply", str(bad), *via)
    assert proc.returncode == 2 and "zz" in proc.stderr and "bad.yaml" in proc.stderr
    proc = cli.run("dag", "show", "no-such-dag", *via)
    assert proc.returncode == 3 and "no-such-dag" in proc.stderr
    assert cli.run("dag", "delete", "no-such-dag", *via).returncode == 3


def test_run_and_instance_verbs(cli: Cli, via: list[str], server: ApiServer) -> None:
    for name, text in (("gate.yaml", APPROVAL), ("flop.yaml", FAILING), ("nap.yaml", SLEEPY)):
        _ok(cli.run("dag", "apply", str(cli.write(name, text)), *via))
    mode = via[0].strip("-")

    # run, wait for it to wait for a person, continue it from the CLI
    gate = Cli.as_json(_ok(cli.run("dag", "run", "gate", "--tag", f"via={mode}", "--wait", "20",
                                   "--json", *via)))
    assert gate["status"] == "blocked"
    proc = cli.run("ins", "resume", gate["id"], *via)
    assert proc.returncode == 4 and "blocked" in proc.stderr
    cont = Cli.as_json(_ok(cli.run("ins", "continue", gate["id"], "--task", "approve",
                                   "--json", *via)))
    assert cont["id"] == gate["id"]
    watched = Cli.as_json(_ok(cli.run("ins", "watch", gate["id"], "--json", *via)))
    assert watched["status"] == "success"

    # a failing run: exit 1 when waited for; retry; list filters
    proc = cli.run("dag", "run", "flop", "--var", "why=disk full", "--tag", f"via={mode}",
                   "--wait", "20", "--json", *via)
    assert proc.returncode == 1
    flop = Cli.as_json(proc)
    assert flop["status"] == "failed"
    assert "disk full" in {t["taskId"]: t for t in flop["tasks"]}["b"]["reason"]
    assert cli.run("dag", "run", "flop", "--var", "nope=1", *via).returncode == 2
    assert cli.run("dag", "run", "flop", "--var", "novalue", *via).returncode == 2
    assert cli.run("dag", "run", "ghost", *via).returncode == 3

    retried = cli.run("ins", "retry", flop["id"], "--wait", "0", "--json", *via)
    assert retried.returncode == 0, retried.stderr
    proc = cli.run("ins", "watch", flop["id"], "--json", *via)
    assert proc.returncode == 1 and Cli.as_json(proc)["status"] == "failed"
    show = Cli.as_json(_ok(cli.run("ins", "show", flop["id"], "--json", *via)))
    assert {t["taskId"]: t for t in show["tasks"]}["b"]["attempts"] == 2
    assert flop["id"] in _ok(cli.run("ins", "show", flop["id"], *via)).stdout

    page = Cli.as_json(_ok(cli.run("ins", "list", "--tag", f"via={mode}", "--limit", "1",
                                   "--json", *via)))
    assert [i["id"] for i in page["items"]] == [flop["id"]] and page["nextCursor"]
    rest = Cli.as_json(_ok(cli.run("ins", "list", "--tag", f"via={mode}", "--cursor",
                                   page["nextCursor"], "--json", *via)))
    assert [i["id"] for i in rest["items"]] == [gate["id"]] and rest["nextCursor"] is None
    failed = Cli.as_json(_ok(cli.run("ins", "list", "--tag", f"via={mode}", "--status",
                                     "failed", "--json", *via)))
    assert [i["id"] for i in failed["items"]] == [flop["id"]]
    table = _ok(cli.run("ins", "list", "--dag", "flop", *via)).stdout
    assert flop["id"] in table and "failed" in table
    assert cli.run("ins", "list", "--status", "bogus", *via).returncode == 2
    assert cli.run("ins", "list", "--created-after", "yesterday", *via).returncode == 2
    assert cli.run("ins", "show", "no-such-instance", *via).returncode == 3

    # pause / resume / cancel a running one
    nap = _id(_ok(cli.run("dag", "run", "nap", "--json", *via)))
    _wait_status(cli, via, nap, "running")
    paused = Cli.as_json(_ok(cli.run("ins", "pause", nap, "--json", *via)))
    assert paused["status"] in ("running", "paused")
    _wait_status(cli, via, nap, "paused")
    _ok(cli.run("ins", "resume", nap, *via))
    _wait_status(cli, via, nap, "running")
    _ok(cli.run("ins", "cancel", nap, *via))
    _wait_status(cli, via, nap, "canceled")
    proc = cli.run("ins", "cancel", nap, *via)
    assert proc.returncode == 4 and "canceled" in proc.stderr


def _wait_status(cli: Cli, via: list[str], iid: str, status: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 20
    while True:
        inst = Cli.as_json(_ok(cli.run("ins", "show", iid, "--json", *via)))
        if inst["status"] == status or time.monotonic() > deadline:
            assert inst["status"] == status, inst
            return inst
        time.sleep(0.2)


def test_node_list_and_unreachable(cli: Cli, via: list[str]) -> None:
    nodes = Cli.as_json(_ok(cli.run("node", "list", "--json", *via)))["items"]
    assert [n["nodeId"] for n in nodes] == ["cli-node"]  # the client itself is not listed
    assert nodes[0]["isLeader"] and nodes[0]["role"] == "worker"
    assert "cli-node" in _ok(cli.run("node", "list", *via)).stdout


def test_exit_codes_without_a_server(cli: Cli, tmp_path: Path) -> None:
    proc = cli.run("dag", "list", "--server", "http://127.0.0.1:9")
    assert proc.returncode == 5 and "cannot reach" in proc.stderr
    tokens = ApiServer(f"sqlite:///{tmp_path / 't.db'}", tmp_path, tokens=["sekrit-token"])
    tokens.start()
    try:
        proc = cli.run("dag", "list", "--server", tokens.url)
        assert proc.returncode == 5 and "TIDEFLOW_TOKEN" in proc.stderr
        cli.env["TIDEFLOW_TOKEN"] = "sekrit-token"
        assert Cli.as_json(_ok(cli.run("dag", "list", "--json", "--server", tokens.url))) == {
            "items": []}
    finally:
        tokens.stop()


def test_dag_pause_and_resume(cli: Cli, via: list[str]) -> None:
    gate = cli.write("gate.yaml", APPROVAL)
    _ok(cli.run("dag", "apply", str(gate), *via))
    before = Cli.as_json(_ok(cli.run("dag", "show", "gate", "--json", *via)))
    paused = Cli.as_json(_ok(cli.run("dag", "pause", "gate", "--json", *via)))
    assert paused["paused"] is True and paused["nextFireTimes"] == []
    assert paused["version"] == before["version"]  # no new version
    assert "schedule of DAG gate paused" in _ok(cli.run("dag", "pause", "gate", *via)).stdout
    listed = _ok(cli.run("dag", "list", *via)).stdout
    assert re.search(r"^ *gate .* paused ", listed, re.M), listed
    shown = _ok(cli.run("dag", "show", "gate", *via)).stdout
    assert "(normal, schedule paused)" in shown and "next runs" not in shown
    assert cli.run("dag", "pause", "ghost", *via).returncode == 3

    resumed = Cli.as_json(_ok(cli.run("dag", "resume", "gate", "--json", *via)))
    assert resumed["paused"] is False and len(resumed["nextFireTimes"]) == 5
    assert "schedule of DAG gate running" in _ok(cli.run("dag", "resume", "gate", *via)).stdout
    assert re.search(r"^ *gate .* running ", _ok(cli.run("dag", "list", *via)).stdout, re.M)


ODD_TASK = "a b/c?d#e%f \"q\" 'x' é日本"


def test_odd_task_and_dag_ids_on_the_command_line(cli: Cli, via: list[str]) -> None:
    mode = via[0].strip("-")
    dag_id = f"odd {mode}/dag?#%é"
    doc = {"id": dag_id, "tasks": [
        {"id": "common -child", "actionName": "ok"},
        {"id": ODD_TASK, "actionName": "approval", "dependOn": ["common -child"]},
    ]}
    path = cli.write(f"odd-{mode}.json", json.dumps(doc))
    _ok(cli.run("dag", "apply", str(path), *via))
    shown = Cli.as_json(_ok(cli.run("dag", "show", dag_id, "--json", *via)))
    assert shown["id"] == dag_id
    inst = Cli.as_json(_ok(cli.run("dag", "run", dag_id, "--wait", "20", "--json", *via)))
    assert inst["status"] == "blocked"
    cont = cli.run("ins", "continue", inst["id"], "--task", ODD_TASK, "--wait", "20", "--json",
                   *via)
    assert cont.returncode == 0, cont.stdout + cont.stderr
    done = Cli.as_json(_ok(cli.run("ins", "watch", inst["id"], "--json", *via)))
    assert done["status"] == "success"
    assert {t["taskId"] for t in done["tasks"]} == {"common -child", ODD_TASK}
    assert ODD_TASK in _ok(cli.run("ins", "show", inst["id"], *via)).stdout
    _ok(cli.run("dag", "delete", dag_id, *via))


TYPED = """
id: typed
vars:
  name: {type: string, required: true}
  size: {type: integer, defaultValue: 3, maximum: 50}
tasks:
  - {id: a, actionName: ok}
"""


def test_typed_vars_through_the_client_verbs(cli: Cli, via: list[str], server: ApiServer
                                            ) -> None:
    def stored() -> int:
        listed = Cli.as_json(_ok(cli.run("ins", "list", "--dag", "typed", "--json", *via)))
        return len(listed["items"] if isinstance(listed, dict) else listed)

    _ok(cli.run("dag", "apply", str(cli.write("typed.yaml", TYPED)), *via))
    before = stored()
    shown = cli.run("dag", "show", "typed", *via)
    assert "type: integer" in _ok(shown).stdout
    proc = cli.run("dag", "run", "typed", "--var", "size=5", *via)
    assert proc.returncode == 2
    assert "run var 'name' is required (required: true)" in " ".join(proc.stderr.split())
    proc = cli.run("dag", "run", "typed", "--var", "name=n", "--var", "size=x", *via)
    assert proc.returncode == 2
    assert "run var 'size' must be a whole number (type: integer)" in " ".join(
        proc.stderr.split())
    assert stored() == before  # the refused runs stored nothing
    done = Cli.as_json(_ok(cli.run("dag", "run", "typed", "--var", "name=n", "--var", "size=7",
                                   "--wait", "20", "--json", *via)))
    assert done["vars"] == {"name": "n", "size": 7}
    assert stored() == before + 1
