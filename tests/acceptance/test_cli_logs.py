"""The operator log as JSON lines (``--log-format json``) and ``tideflow ins logs``, through the
real command."""

from __future__ import annotations

import json
import time
from typing import Any

from .clihelp import Cli

FLAKY = """\
id: flaky
tasks:
  - id: boom
    actionName: shell
    retry: {maxAttempts: 2, backoffSecs: 0.05}
    params: {cmd: "echo trying; exit 3", shell: true}
  - id: slow
    actionName: shell
    timeoutSecs: 1
    params: {cmd: ["sleep", "5"]}
"""


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))  # every log line is one JSON object
    return out


def test_operator_log_as_json_lines(cli: Cli) -> None:
    path = cli.write("flaky.yaml", FLAKY)
    done = cli.run("run", str(path), "--log-format", "json", "--json",
                   env_extra={"TIDEFLOW_LOG": "INFO"})
    assert done.returncode == 1, done.stderr
    iid = cli.as_json(done)["id"]
    records = [r for r in _json_lines(done.stderr) if r["logger"].startswith("tideflow.")]
    ours = [r for r in records if r.get("instance") == iid]
    tasks = [(r["task"], r["attempt"], r["message"].split(" (")[0]) for r in ours
             if r["logger"] == "tideflow.tasks"]
    assert ("boom", 1, "task boom attempt 1 failed") in tasks
    retry = [m for t, a, m in tasks if "retrying" in m]
    assert len(retry) == 1 and retry[0].startswith("task boom retrying in 0.0")
    assert retry[0].endswith("s, attempt 2 of 2 next")
    assert ("boom", 2, "task boom attempt 2 failed") in tasks
    assert ("slow", 1, "task slow attempt 1 timed out") in tasks
    [end] = [r for r in ours if r["logger"] == "tideflow.instances"]
    assert "ended failed" in end["message"] and end["dag"] == "flaky"
    for r in ours:
        assert r["level"] == "INFO" and r["node"].startswith("cli-") and r["time"].endswith("Z")
        assert r["dag"] == "flaky"

    # the same instance's task logs, through the database
    logs = cli.run("ins", "logs", iid, "boom")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert [x.split(" ", 2)[1] for x in lines].count("boom#1") >= 3
    assert any(x.endswith("boom#2 stdout trying") for x in lines)
    assert lines[-1].endswith("boom#2 engine attempt 2 failed: exit code 3 (nothing on stderr)")
    second = cli.run("ins", "logs", iid, "boom", "--attempt", "2", "--json")
    assert {json.loads(x)["attempt"] for x in second.stdout.splitlines()} == {2}
    missing = cli.run("ins", "logs", iid, "nope")
    assert missing.returncode != 0 and "has no task 'nope'" in missing.stderr

    # ins show: each task's reason, attempts with their reasons, and its last log lines
    shown = cli.run("ins", "show", iid, "--lines", "3")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    boom = text[text.index("task boom: failed (2 attempts)"):text.index("task slow:")]
    assert "  reason: exit code 3 (nothing on stderr)" in boom
    attempts = [x for x in boom.splitlines() if x.startswith("  attempt ")]
    assert [x.split()[1:3] for x in attempts] == [["1", "failed"], ["2", "failed"]]
    assert all(x.endswith(": exit code 3 (nothing on stderr)") for x in attempts)
    last = boom.split("last log lines:")[1].strip().splitlines()
    assert len(last) == 3 and last[-2].endswith("#2 stdout trying")
    assert "attempt 1  failed" in text[text.index("task slow:"):]
    assert "timed out after 1s" in text[text.index("task slow:"):]
    # --json keeps its shape
    as_json = cli.as_json(cli.run("ins", "show", iid, "--json"))
    assert as_json["tasks"][0]["attemptHistory"][0]["reason"] == "exit code 3 (nothing on stderr)"


def test_bad_log_format_is_refused(cli: Cli) -> None:
    path = cli.write("flaky.yaml", FLAKY)
    done = cli.run("run", str(path), "--log-format", "xml")
    assert done.returncode == 2
    assert "log format 'xml': use text or json" in done.stderr


def test_server_logs_leadership_at_info_as_json(cli: Cli) -> None:
    proc = cli.popen("server", "--node-id", "json-node", "--log-format", "json")
    try:
        assert proc.stderr is not None
        seen: list[dict[str, Any]] = []
        for line in proc.stderr:
            seen.append(json.loads(line))  # every line is JSON, the plain notices' too
            if "is the leader" in seen[-1]["message"]:
                break
        proc.terminate()
        _, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()
    every = seen + [json.loads(x) for x in rest.splitlines() if x.strip()]
    assert "node json-node running (worker)" in [r["message"] for r in every]
    # a record without ids of its own (the cluster's, the server's) still names the node
    assert all(r["node"] == "json-node" for r in every if r["logger"].startswith("tideflow"))
    # stepping down as the node stops is routine: INFO, not WARNING
    [down] = [r for r in _json_lines(rest) if "stepped down" in r["message"]]
    assert down["level"] == "INFO" and down["message"].endswith("(node stopping)")
    lead = seen[-1]
    assert lead["level"] == "INFO" and lead["logger"] == "tideflow.cluster"
    assert lead["node"] == "json-node"
    assert lead["message"] == "leadership: json-node is the leader (token 1)"


def test_task_log_settings_from_the_command_line(cli: Cli) -> None:
    path = cli.write("many.yaml", "id: many\ntasks:\n  - id: a\n    actionName: shell\n"
                     "    params: {cmd: \"seq 1 3000\", shell: true}\n")
    capped = cli.run("run", str(path), "--json", "--task-log-max-bytes", "2048",
                     "--task-log-flush-secs", "0.05")
    assert capped.returncode == 0, capped.stderr
    lines = cli.run("ins", "logs", cli.as_json(capped)["id"], "--json").stdout.splitlines()
    assert any("reached its limit of 2 KiB" in json.loads(x)["text"] for x in lines)
    assert len(lines) < 100
    off = cli.run("run", str(path), "--json", "--no-task-logs")
    assert off.returncode == 0, off.stderr
    assert cli.run("ins", "logs", cli.as_json(off)["id"]).stdout == ""
    bad = cli.run("run", str(path), "--task-log-flush-secs", "0")
    assert bad.returncode == 2 and "--task-log-flush-secs" in bad.stderr


def test_quick_exit_with_no_collector_and_no_alembic_chatter(cli: Cli) -> None:
    path = cli.write("one.yaml", "id: one\ntasks:\n  - id: a\n    actionName: shell\n"
                     "    params: {cmd: [\"true\"]}\n")
    started = time.monotonic()
    done = cli.run("run", str(path), "--otel", env_extra={
        "TIDEFLOW_LOG": "INFO", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    # the exporter would retry for seconds: the last spans get a moment, then are left
    assert took < 6, took
    assert "last spans could not be sent" in done.stderr
    assert "alembic" not in done.stderr
