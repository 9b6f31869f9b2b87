"""`tideflow run FILE` end to end: exit codes, --json, live waiting for a person."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .clihelp import Cli

ById = Callable[[dict[str, Any]], dict[str, dict[str, Any]]]


def test_example_create_cluster_succeeds(cli: Cli, task_by_id: ById) -> None:
    proc = cli.run("run", "examples/create-cluster.yaml", "--actions", "examples.cloud",
                   "--var", "region=eu-west-1", "--tag", "team=infra", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = cli.as_json(proc)
    for key in ("id", "dagId", "status", "vars", "shareData", "tags", "tasks"):
        assert key in inst
    assert inst["status"] == "success"
    assert inst["vars"]["region"] == "eu-west-1"
    assert inst["tags"] == {"team": "infra"}
    assert inst["shareData"]["clusterState"] == "healthy"
    assert inst["shareData"]["clusterId"].startswith("c-eu-west-1-")
    tasks = task_by_id(inst)
    assert tasks["notify"]["status"] == "success"
    for t in inst["tasks"]:
        assert {"taskId", "status", "attempts", "reason", "traces"} <= set(t)
    # the shell task's output is traced
    assert any("healthy" in tr["message"] for tr in tasks["notify"]["traces"])


def test_an_empty_var_on_the_command_line_uses_the_default(cli: Cli) -> None:
    dag = cli.write("greet.yaml", """
vars:
  who: {defaultValue: world}
  mood: {}
tasks:
  - {id: a, actionName: shell, params: {cmd: [echo, "{{who}}"]}}
""")
    proc = cli.run("run", str(dag), "--var", "who=", "--var", "mood=", "--json")
    assert proc.returncode == 0, proc.stderr
    assert cli.as_json(proc)["vars"] == {"who": "world", "mood": ""}


def test_a_user_actions_params_are_decoded_weakly(cli: Cli) -> None:
    (cli.tmp / "weakmod.py").write_text(
        "from pydantic import BaseModel\n"
        "class P(BaseModel):\n"
        "    name: str\n"
        "    times: int = 1\n"
        "class Echo:\n"
        "    name = 'echo-name'\n"
        "    params_model = P\n"
        "    def run(self, ctx, params):\n"
        "        ctx.share_data['got'] = f'{params.name!r} x{params.times}'\n"
        "ACTIONS = [Echo()]\n"
    )
    dag = cli.write("weak.yaml", """
tasks:
  - {id: a, actionName: echo-name, params: {NAME: 123, Times: "2"}}
""")
    proc = cli.run("run", str(dag), "--actions", "weakmod", "--json",
                   env_extra={"PYTHONPATH": str(cli.tmp)})
    assert proc.returncode == 0, proc.stderr
    assert cli.as_json(proc)["shareData"] == {"got": "'123' x2"}


def test_example_progress_display_and_summary(cli: Cli) -> None:
    proc = cli.run("run", "examples/nightly-backup.yaml",
                   "--var", f"target={cli.tmp / 'backups'}")
    assert proc.returncode == 0, proc.stderr
    assert "success" in proc.stdout
    assert "archive" in proc.stdout
    assert list((cli.tmp / "backups").glob("backup-*.tar.gz"))


def test_failure_with_retry_policy_exits_1(cli: Cli, task_by_id: ById) -> None:
    dag = cli.write("flaky.yaml", """
tasks:
  - id: count
    actionName: shell
    retry: {maxAttempts: 3, backoffSecs: 0.05}
    params:
      cmd: ["sh", "-c", "echo try >> {tmp}/tries; echo disk full >&2; exit 3"]
  - id: never
    actionName: shell
    dependOn: [count]
    params: {{cmd: ["true"]}}
""".replace("{tmp}", str(cli.tmp)).replace("{{", "{").replace("}}", "}"))
    proc = cli.run("run", str(dag), "--json")
    assert proc.returncode == 1, proc.stderr
    inst = cli.as_json(proc)
    assert inst["dagId"] == "flaky"  # the file name
    assert inst["status"] == "failed"
    count = task_by_id(inst)["count"]
    assert count["attempts"] == 3
    assert len(count["attemptHistory"]) == 3
    assert "exit code 3" in count["reason"] and "disk full" in count["reason"]
    assert (cli.tmp / "tries").read_text().count("try") == 3
    assert task_by_id(inst)["never"]["status"] == "init"


def test_timeout_kills_the_command(cli: Cli, task_by_id: ById) -> None:
    marker = cli.tmp / "late"
    dag = cli.write("slow.yaml", f"""
tasks:
  - id: slow
    actionName: shell
    timeoutSecs: 1
    params: {{cmd: ["sh", "-c", "sleep 3; touch {marker}"]}}
""")
    proc = cli.run("run", str(dag), "--json")
    assert proc.returncode == 1
    slow = task_by_id(cli.as_json(proc))["slow"]
    assert slow["status"] == "failed"
    assert "timed out" in slow["reason"]
    time.sleep(3)
    assert not marker.exists()


def test_skip_by_precheck(cli: Cli, task_by_id: ById) -> None:
    dag = cli.write("skip.yaml", """
vars:
  dryRun: {defaultValue: "false"}
tasks:
  - id: plan
    actionName: shell
    params: {cmd: ["echo", "plan"]}
  - id: apply
    actionName: shell
    dependOn: [plan]
    params: {cmd: ["echo", "apply"]}
    preCheck:
      dry:
        act: skip
        conditions: [{source: vars, key: dryRun, op: in, values: [true]}]
  - id: report
    actionName: shell
    dependOn: [apply]
    params: {cmd: ["echo", "report"]}
""")
    proc = cli.run("run", str(dag), "--var", "dryRun=true", "--json")
    assert proc.returncode == 0, proc.stderr
    tasks = task_by_id(cli.as_json(proc))
    assert tasks["apply"]["status"] == "skipped"
    assert tasks["apply"]["attempts"] == 0
    assert tasks["report"]["status"] == "success"


def test_share_data_between_tasks(cli: Cli, task_by_id: ById) -> None:
    dag = cli.write("share.yaml", """
tasks:
  - id: make
    actionName: shell
    params: {cmd: ["echo", "c-42"], saveAs: cluster}
  - id: use
    actionName: shell
    dependOn: [make]
    params: {cmd: ["echo", "using {{shareData.cluster}} and {{.shareData.cluster}}"]}
""")
    proc = cli.run("run", str(dag), "--json")
    assert proc.returncode == 0, proc.stderr
    inst = cli.as_json(proc)
    assert inst["shareData"] == {"cluster": "c-42"}
    use = task_by_id(inst)["use"]
    assert use["params"]["cmd"] == ["echo", "using c-42 and c-42"]
    assert any("using c-42 and c-42" in t["message"] for t in use["traces"])


@pytest.fixture
def api_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"cluster": {"id": "k-7", "nodes": [1, 2, 3]}}).encode()
            self.send_response(200 if self.path.startswith("/ok") else 503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_task_against_local_server(cli: Cli, api_server: str, task_by_id: ById) -> None:
    dag = cli.write("http.yaml", f"""
vars:
  api: {{defaultValue: "{api_server}"}}
tasks:
  - id: get
    actionName: http
    params: {{url: "{{{{api}}}}/ok", saveAs: cid, saveField: cluster.id}}
  - id: bad
    actionName: http
    params: {{url: "{{{{api}}}}/down"}}
""")
    proc = cli.run("run", str(dag), "--json")
    inst = cli.as_json(proc)
    assert proc.returncode == 1
    assert inst["shareData"] == {"cid": "k-7"}
    assert "503" in task_by_id(inst)["bad"]["reason"]


APPROVAL = """
tasks:
  - id: plan
    actionName: shell
    params: {cmd: ["echo", "plan"]}
  - id: approve
    actionName: approval
    dependOn: [plan]
    params: {message: "ok to go?"}
  - id: apply
    actionName: shell
    dependOn: [approve]
    params: {cmd: ["echo", "applied"]}
"""


def test_block_then_continue_from_another_process(cli: Cli, task_by_id: ById) -> None:
    dag = cli.write("approve.yaml", APPROVAL)
    runner = cli.popen("run", str(dag), "--json")
    assert runner.stderr is not None
    instance_id = None
    deadline = time.monotonic() + 30
    while instance_id is None and time.monotonic() < deadline:
        line = runner.stderr.readline()
        found = re.search(r"tideflow ins continue (\S+)", line)
        if found:
            instance_id = found.group(1)
    assert instance_id, "the run never said how to continue it"
    cont = cli.run("ins", "continue", instance_id, "--json")
    assert cont.returncode == 0, cont.stderr
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, err
    inst = json.loads(out)
    assert inst["status"] == "success"
    assert task_by_id(inst)["apply"]["status"] == "success"


def test_no_wait_blocked_exits_3(cli: Cli, task_by_id: ById) -> None:
    dag = cli.write("approve.yaml", APPROVAL)
    proc = cli.run("run", str(dag), "--json", "--no-wait-blocked")
    assert proc.returncode == 3, proc.stderr
    inst = cli.as_json(proc)
    assert inst["status"] == "blocked"
    assert task_by_id(inst)["approve"]["status"] == "blocked"


def test_interrupt_cancels_the_instance(cli: Cli, task_by_id: ById) -> None:
    dag = cli.write("long.yaml", """
tasks:
  - id: long
    actionName: shell
    timeoutSecs: 60
    params: {cmd: ["sleep", "30"]}
  - id: next
    actionName: shell
    dependOn: [long]
    params: {cmd: ["true"]}
""")
    proc = cli.popen("run", str(dag), "--json")
    db = cli.tmp / "cli.db"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the long task runs
        try:
            with sqlite3.connect(db) as conn:
                row = conn.execute(
                    "SELECT status FROM tf_task_instances WHERE task_id = 'long'").fetchone()
            if row and row[0] == "running":
                break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    inst = json.loads(out)
    assert inst["status"] == "canceled"
    assert task_by_id(inst)["long"]["status"] == "canceled"
    assert task_by_id(inst)["next"]["attempts"] == 0


def test_bad_definition_exits_2_naming_file_and_task(cli: Cli) -> None:
    dag = cli.write("broken.yaml", """
tasks:
  - id: a
    actionName: shell
    dependOn: [ghost]
    params: {cmd: ["true"]}
""")
    proc = cli.run("run", str(dag))
    assert proc.returncode == 2
    assert "broken.yaml" in proc.stderr
    assert "ghost" in proc.stderr and "'a'" in proc.stderr


def test_unknown_action_exits_2(cli: Cli) -> None:
    dag = cli.write("unknown.yaml", "tasks:\n  - {id: a, actionName: teleport}\n")
    proc = cli.run("run", str(dag))
    assert proc.returncode == 2
    assert "teleport" in proc.stderr


def test_every_problem_of_a_definition_is_listed_at_once(cli: Cli) -> None:
    dag = cli.write("mix.yaml", """
tasks:
  - {id: a, actionName: shell, dependOn: [zzz], params: {cmd: ["echo"]}}
  - {id: b, actionName: nosuch}
  - id: c
    actionName: shell
    params: {cmd: ["echo"]}
    compensate: {actionName: nosuch2}
""")
    proc = cli.run("run", str(dag))
    assert proc.returncode == 2
    assert "3 problems" in proc.stderr
    for part in ("'zzz'", "'nosuch'", "'nosuch2' in compensate"):
        assert part in proc.stderr, part


def test_bad_arguments_exit_2(cli: Cli) -> None:
    dag = cli.write("ok.yaml", "vars: {x: {defaultValue: '1'}}\n"
                               "tasks:\n  - {id: a, actionName: shell, params: {cmd: ['true']}}\n")
    undeclared = cli.run("run", str(dag), "--var", "nope=1")
    assert undeclared.returncode == 2
    assert "nope" in undeclared.stderr
    malformed = cli.run("run", str(dag), "--var", "novalue")
    assert malformed.returncode == 2
    assert "KEY=VALUE" in malformed.stderr
    missing = cli.run("run", str(cli.tmp / "absent.yaml"))
    assert missing.returncode == 2


def test_retry_after_the_run_ended_drives_it_here(cli: Cli, task_by_id: ById) -> None:
    marker = cli.tmp / "broken"
    marker.write_text("")
    dag = cli.write("fixable.yaml", f"""
tasks:
  - id: check
    actionName: shell
    params: {{cmd: ["sh", "-c", "test ! -e {marker}"]}}
  - id: after
    actionName: shell
    dependOn: [check]
    params: {{cmd: ["echo", "done"]}}
""")
    failed = cli.run("run", str(dag), "--json")
    assert failed.returncode == 1
    instance_id = cli.as_json(failed)["id"]
    marker.unlink()
    retried = cli.run("ins", "retry", instance_id, "--json")
    assert retried.returncode == 0, retried.stderr
    inst = cli.as_json(retried)
    assert inst["status"] == "success"
    assert task_by_id(inst)["check"]["attempts"] == 2
    assert task_by_id(inst)["after"]["status"] == "success"


def test_dag_run_without_a_worker_runs_here(cli: Cli) -> None:
    dag = cli.write("solo.yaml", "tasks:\n  - {id: a, actionName: shell, "
                                 "params: {cmd: [echo, solo]}}\n")
    assert cli.run("dag", "apply", str(dag)).returncode == 0
    proc = cli.run("dag", "run", "solo", "--json")
    assert proc.returncode == 0, proc.stderr
    assert cli.as_json(proc)["status"] == "success"
