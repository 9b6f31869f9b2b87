"""An instance whose ``tideflow run`` was killed (kill -9) is recovered exactly once by the
client verb that adopts it: one new attempt for the interrupted task, the command applied
before anything starts, and a state that matches what the verb prints. A client without
the DAG's actions does not drive it."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .clihelp import Cli

ById = Callable[[dict[str, Any]], dict[str, dict[str, Any]]]


def _orphan(cli: Cli, tmp: Path) -> tuple[str, Path, Path]:
    """Start ``tideflow run`` of a DAG whose task ``slow`` logs each attempt and, unless the
    file ``go`` exists, sleeps; kill -9 the run while ``slow`` runs. Returns the instance id,
    the attempt log and the ``go`` file."""
    log, go = tmp / "attempts.log", tmp / "go"
    dag = cli.write("orphan.yaml", f"""
id: orphan
tasks:
  - {{id: first, actionName: shell, params: {{cmd: ["true"]}}}}
  - id: slow
    dependOn: [first]
    actionName: shell
    timeoutSecs: 120
    params:
      shell: true
      cmd: "echo attempt >> {log}; test -f {go} || sleep 100"
""")
    proc = cli.popen("run", str(dag))
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        time.sleep(0.3)  # its start is committed (the attempt's row)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    listed = cli.as_json(cli.run("ins", "list", "--json"))
    (inst,) = listed["items"]
    assert inst["status"] == "running"
    return inst["id"], log, go


def _show(cli: Cli, iid: str) -> dict[str, Any]:
    return cli.as_json(cli.run("ins", "show", iid, "--json"))


def _on(cli: Cli, db_url: str) -> None:
    cli.db = db_url
    cli.env["TIDEFLOW_DB"] = db_url


def test_pause_then_resume_after_kill_9_is_one_new_attempt(
    cli: Cli, tmp_path: Path, task_by_id: ById, db_url: str
) -> None:
    _on(cli, db_url)
    iid, log, go = _orphan(cli, tmp_path)
    paused = cli.run("ins", "pause", iid, "--json")
    assert paused.returncode == 0, paused.stderr
    printed = cli.as_json(paused)
    assert printed["status"] == "paused"
    slow = task_by_id(printed)["slow"]
    assert slow["status"] == "init"  # owed its new attempt; nothing starts while paused
    assert slow["attempts"] == 1
    assert slow["attemptHistory"][0]["status"] == "failed"
    assert "interrupted" in slow["attemptHistory"][0]["reason"]
    # what it printed is what the database holds
    stored = _show(cli, iid)
    assert stored["status"] == "paused"
    assert task_by_id(stored)["slow"] == slow
    assert log.read_text().count("attempt") == 1

    go.write_text("")
    resumed = cli.run("ins", "resume", iid, "--json")
    assert resumed.returncode == 0, resumed.stderr
    done = cli.as_json(resumed)
    assert done["status"] == "success"
    assert task_by_id(done)["slow"]["attempts"] == 2
    assert task_by_id(done)["first"]["attempts"] == 1
    assert log.read_text().count("attempt") == 2
    assert _show(cli, iid)["status"] == "success"


def test_cancel_after_kill_9_starts_nothing(
    cli: Cli, tmp_path: Path, task_by_id: ById, db_url: str
) -> None:
    _on(cli, db_url)
    iid, log, _ = _orphan(cli, tmp_path)
    canceled = cli.run("ins", "cancel", iid, "--json")
    assert canceled.returncode == 0, canceled.stderr
    printed = cli.as_json(canceled)
    assert printed["status"] == "canceled"
    slow = task_by_id(printed)["slow"]
    assert slow["status"] == "canceled" and slow["attempts"] == 1
    assert _show(cli, iid)["status"] == "canceled"
    time.sleep(0.5)
    assert log.read_text().count("attempt") == 1


def test_a_client_without_the_actions_does_not_drive(
    cli: Cli, tmp_path: Path, task_by_id: ById
) -> None:
    marker = tmp_path / "broken"
    marker.write_text("")
    cli.write("orphan_actions.py", f"""
import os
from pathlib import Path

def register_actions(registry):
    def flaky(ctx, params):
        if os.path.exists({str(marker)!r}):
            raise RuntimeError("still broken")
    registry.add_function("flaky", flaky)
""")
    cli.env["PYTHONPATH"] = str(tmp_path)
    dag = cli.write("custom.yaml", """
id: custom
tasks:
  - {id: a, actionName: flaky}
""")
    ran = cli.run("run", str(dag), "--actions", "orphan_actions", "--json")
    assert ran.returncode == 1, ran.stderr
    iid = cli.as_json(ran)["id"]
    marker.unlink()

    refused = cli.run("ins", "retry", iid, "--json")
    assert refused.returncode == 4, (refused.stdout, refused.stderr)
    assert "flaky" in refused.stderr and "--actions" in refused.stderr
    stored = _show(cli, iid)
    assert stored["status"] == "failed"
    assert task_by_id(stored)["a"]["attempts"] == 1
    assert "not registered" not in json.dumps(stored)

    retried = cli.run("ins", "retry", iid, "--actions", "orphan_actions", "--json")
    assert retried.returncode == 0, retried.stderr
    done = cli.as_json(retried)
    assert done["status"] == "success"
    assert task_by_id(done)["a"]["attempts"] == 2
