"""`tideflow run FILE` with bad or huge input: exit code 2, one clear message on stderr naming
the file, nothing written to the database."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from .clihelp import Cli


def rows(cli: Cli) -> dict[str, int]:
    """Rows per table; no database file at all counts as empty."""
    path = Path(cli.db.removeprefix("sqlite:///"))
    if not path.exists():
        return {}
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        counts = {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    return {n: c for n, c in counts.items() if n.startswith("tf_") and c}


def run_bad(cli: Cli, *args: str) -> str:
    before = rows(cli)
    start = time.monotonic()
    proc = cli.run("run", *args, timeout=120)
    assert time.monotonic() - start < 60
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr) < 20_000
    assert rows(cli) == before
    return " ".join(proc.stderr.split())  # rich may wrap long lines


def test_a_file_over_the_size_limit(cli: Cli) -> None:
    path = cli.tmp / "huge.yaml"
    with path.open("w") as out:
        out.write("tasks: [{id: a, actionName: shell}]\n")
        out.write(("# padding " * 100 + "\n") * 11_000)  # 11 MB
    err = run_bad(cli, str(path))
    assert "huge.yaml: is 11," in err and "more than the limit of 10,485,760" in err


def test_too_many_tasks(cli: Cli) -> None:
    lines = ["tasks:"] + [f"  - {{id: t{i}, actionName: shell}}" for i in range(20_001)]
    path = cli.write("wide.yaml", "\n".join(lines) + "\n")
    err = run_bad(cli, str(path))
    assert "wide.yaml: has 20,001 tasks, more than the limit of 20,000" in err


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("deep.yaml", "tasks: [{id: a, actionName: shell, params: {x: " + "[" * 10_000
     + "]" * 10_000 + "}}]\n", "exceeded maximum nesting depth"),
    ("deep.json", '{"tasks": [{"id": "a", "actionName": "shell", "params": '
     + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}]}", "nests too deeply"),
    ("laughs.yaml", "tasks:\n  - id: a\n    actionName: shell\n    params:\n"
     "      a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"      a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
               for i in range(1, 10)), "once its YAML aliases are expanded"),
    ("bigint.yaml", "tasks: [{id: a, actionName: shell, timeoutSecs: " + "9" * 5000 + "}]\n",
     "timeoutSecs: input should be a finite number"),
    ("binary.yaml", "tasks: [{id: a\x00, actionName: shell}]\n", "is not valid YAML"),
    ("cycle.yaml", "tasks:\n  - {id: a, actionName: shell, dependOn: [b]}\n"
     "  - {id: b, actionName: shell, dependOn: [a]}\n", "cycle: a -> b -> a"),
    ("cron.yaml", "cron: '0 2 31 2 *'\ntasks: [{id: a, actionName: shell}]\n",
     "cron '0 2 31 2 *' is not a valid cron expression, or never fires"),
])  # fmt: skip
def test_hostile_or_broken_files(cli: Cli, name: str, text: str, expected: str) -> None:
    err = run_bad(cli, str(cli.write(name, text)))
    assert f"{name}:" in err
    assert expected in err, err


def test_not_utf8(cli: Cli) -> None:
    path = cli.tmp / "latin1.yaml"
    path.write_bytes("tasks: [{id: caf\u00e9, actionName: shell}]\n".encode("latin-1"))
    err = run_bad(cli, str(path))
    assert "latin1.yaml: is not UTF-8 text (bad byte at offset 16)" in err


@pytest.mark.parametrize(("args", "expected"), [
    (["--var", "x" * 100_000], "is not KEY=VALUE"),
    (["--var", "=1"], "has an empty KEY"),
    (["--var", "x=1", "--var", "x=2"], "'x' is given twice"),
    (["--var", "nope=1"], "'nope' is not declared by DAG 'ok'"),
    (["--tag", "k=" + "v" * 192], "the limit is 191"),
    (["--tag", "k=a\tb"], "holds a control character"),
])  # fmt: skip
def test_bad_vars_and_tags_write_nothing(cli: Cli, args: list[str], expected: str) -> None:
    dag = cli.write("ok.yaml", "vars: {x: '1'}\ntasks:\n  - {id: a, actionName: shell,"
                               " params: {cmd: ['true']}}\n")
    err = run_bad(cli, str(dag), *args)
    assert expected in err, err
    assert len(err) < 2000


def test_very_many_undeclared_vars(cli: Cli) -> None:
    dag = cli.write("ok.yaml", "vars: {x: '1'}\ntasks:\n  - {id: a, actionName: shell,"
                               " params: {cmd: ['true']}}\n")
    args = [arg for i in range(5_000) for arg in ("--var", f"v{i}=1")]
    err = run_bad(cli, str(dag), *args)
    assert "'v0'" in err and "4,980 more are not declared by DAG 'ok'" in err
    assert len(err) < 2000


TYPED = ("vars:\n  name: {type: string, required: true}\n"
         "  size: {type: integer, defaultValue: '3', maximum: 50}\n"
         "tasks:\n  - {id: a, actionName: shell, params: {cmd: ['echo', '{{size}}']}}\n")


@pytest.mark.parametrize(("args", "expected"), [
    ([], "run var 'name' is required (required: true) and was not given"),
    (["--var", "name=x", "--var", "size=abc"],
     "run var 'size' must be a whole number (type: integer); got the text 'abc'"),
    (["--var", "name=x", "--var", "size=51"], "run var 'size' must be at most 50 (maximum)"),
])  # fmt: skip
def test_typed_vars_that_do_not_fit_write_nothing(cli: Cli, args: list[str],
                                                  expected: str) -> None:
    dag = cli.write("typed.yaml", TYPED)
    err = run_bad(cli, str(dag), *args)
    assert expected in err, err
