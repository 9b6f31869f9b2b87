"""Approvals decided from the CLI (`tideflow ins continue --input --by`, `ins reject`), over
HTTP (`--server`) and straight against the database (`--db`)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from api.harness import ApiServer

from .clihelp import Cli

HANDOVER = """
id: handover
tasks:
  - {id: plan, actionName: ok}
  - id: sign-off
    actionName: approval
    dependOn: [plan]
    params:
      message: Hand over?
      approvers: [alice, bob]
      inputs:
        ticket: {type: string, required: true, pattern: "^T-[0-9]+$"}
        size: {type: integer, defaultValue: 3, minimum: 1}
  - {id: apply, actionName: ok, dependOn: [sign-off]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("cli-approvals")
    srv = ApiServer(f"sqlite:///{tmp / 'cli.db'}", tmp, node_id="cli-node").start()
    yield srv
    srv.stop()


@pytest.fixture(params=["server", "db"])
def via(request: pytest.FixtureRequest, server: ApiServer, cli: Cli) -> list[str]:
    cli.env.pop("TIDEFLOW_DB", None)
    if request.param == "server":
        return ["--server", server.url]
    return ["--db", server.db_url]


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _task(inst: dict[str, Any], tid: str) -> dict[str, Any]:
    return next(t for t in inst["tasks"] if t["taskId"] == tid)


def _blocked(cli: Cli, via: list[str]) -> str:
    _ok(cli.run("dag", "apply", str(cli.write("handover.yaml", HANDOVER)), *via))
    inst = Cli.as_json(_ok(cli.run("dag", "run", "handover", "--wait", "20", "--json", *via)))
    assert inst["status"] == "blocked"
    return str(inst["id"])


def test_continue_with_inputs(cli: Cli, via: list[str]) -> None:
    iid = _blocked(cli, via)
    bad = cli.run("ins", "continue", iid, "--input", "ticket=oops", "--by", "alice", *via)
    assert bad.returncode == 2 and "must match the pattern" in bad.stderr, bad.stderr
    nobody = cli.run("ins", "continue", iid, "--input", "ticket=T-1", *via)
    assert nobody.returncode == 2 and "--by" in nobody.stderr
    stranger = cli.run("ins", "continue", iid, "--input", "ticket=T-1", "--by", "eve", *via)
    assert stranger.returncode == 2 and "'eve' may not decide" in stranger.stderr
    shown = Cli.as_json(_ok(cli.run("ins", "show", iid, "--json", *via)))
    assert _task(shown, "sign-off")["status"] == "blocked"

    _ok(cli.run("ins", "continue", iid, "--task", "sign-off", "--input", "ticket=T-9",
                "--input", "size=5", "--by", "bob", *via))
    done = Cli.as_json(cli.run("ins", "watch", iid, "--json", *via))
    assert done["status"] == "success"
    sign = _task(done, "sign-off")
    assert any(t["message"] == "approved by bob: ticket='T-9', size=5" for t in sign["traces"])


def test_reject(cli: Cli, via: list[str]) -> None:
    iid = _blocked(cli, via)
    proc = cli.run("ins", "reject", iid, "--task", "plan", "--by", "alice", *via)
    assert proc.returncode == 4 and "plan" in proc.stderr
    _ok(cli.run("ins", "reject", iid, "--reason", "not today", "--by", "alice", *via))
    done = cli.run("ins", "watch", iid, "--json", *via)
    assert done.returncode == 1
    sign = _task(Cli.as_json(done), "sign-off")
    assert sign["status"] == "failed" and sign["reason"] == "rejected by alice: not today"
