"""Commands end without asyncio or driver noise on stderr: no "Task was destroyed but it is
pending", no "Future exception was never retrieved" (asyncpg's `connection_lost`), no
"Exception ignored" — for `tideflow run`, the client verbs with `--db` on PostgreSQL and
MariaDB, and `tideflow server` stopped with SIGTERM or SIGINT."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

from .clihelp import Cli

NOISE = re.compile(r"Task was destroyed|never retrieved|connection_lost|Exception ignored|"
                   r"Traceback|Event loop is closed|coroutine .* was never awaited")

DAG = """
id: quiet
tasks:
  - id: a
    actionName: shell
    params: {cmd: ["echo", "hi"]}
  - id: b
    dependOn: [a]
    actionName: shell
    params: {cmd: ["echo", "there"]}
"""


def _quiet(proc: object, code: int = 0) -> str:
    out: str = proc.stderr  # type: ignore[attr-defined]
    assert proc.returncode == code, (proc.returncode, out)  # type: ignore[attr-defined]
    assert not NOISE.search(out), out
    return proc.stdout  # type: ignore[attr-defined,no-any-return]


def _verbs(cli: Cli, db: str, rounds: int) -> None:
    path = cli.write("quiet.yaml", DAG)
    _quiet(cli.run("run", str(path), "--db", db))
    _quiet(cli.run("dag", "apply", str(path), "--db", db))
    iid = json.loads(_quiet(cli.run("dag", "run", "quiet", "--db", db, "--json")))["id"]
    for _ in range(rounds):  # the noise came now and then: look several times
        for verb in (["ins", "list"], ["dag", "list"], ["node", "list"], ["dag", "show", "quiet"],
                     ["ins", "show", iid]):
            _quiet(cli.run(*verb, "--db", db))


def _server_stops_quietly(cli: Cli, db: str, sig: signal.Signals) -> None:
    server = cli.popen("server", "--db", db, "--node-id", f"quiet-{sig.name.lower()}")
    try:
        deadline = time.monotonic() + 30
        while f"quiet-{sig.name.lower()}" not in cli.run("node", "list", "--db", db).stdout:
            assert time.monotonic() < deadline, "the server did not join"
            time.sleep(0.3)
        server.send_signal(sig)
        _, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert not NOISE.search(err), err


@pytest.mark.postgres
def test_postgres_commands_exit_quietly(cli: Cli, postgres_url: str) -> None:
    _verbs(cli, postgres_url, rounds=2)
    _server_stops_quietly(cli, postgres_url, signal.SIGTERM)
    _server_stops_quietly(cli, postgres_url, signal.SIGINT)


@pytest.mark.mysql
def test_mysql_commands_exit_quietly(cli: Cli, mysql_url: str) -> None:
    _verbs(cli, mysql_url, rounds=1)
    _server_stops_quietly(cli, mysql_url, signal.SIGTERM)


def test_sqlite_commands_exit_quietly(cli: Cli) -> None:
    _verbs(cli, cli.db, rounds=1)
    _server_stops_quietly(cli, cli.db, signal.SIGINT)
