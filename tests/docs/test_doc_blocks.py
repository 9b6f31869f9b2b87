"""Every code block of README.md and docs/ runs as written, or is marked as not runnable.

See ``blocks.py`` for the rules. Each page runs in its own scratch folder, its blocks in order,
so a page can write a file in one block and run it in the next, as a reader would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tideflow import load_dag_text

from .blocks import (
    PAGES,
    ROOT,
    Block,
    Directive,
    blocks,
    commands,
    console_steps,
    id_pairs,
    json_keys,
    match_output,
)

_BIN = Path(sys.executable).parent
_TIMEOUT = 300
_RUNNABLE = {"python", "yaml", "json", "sh", "console"}


def _env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEFLOW_")}
    env["PATH"] = f"{_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(scratch)
    env["COLUMNS"] = "200"
    env.pop("POD_NAME", None)
    return env


def _run(
    command: str, scratch: Path, block: Block, *, merged: bool = False
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=scratch,
            env=_env(scratch),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merged else subprocess.PIPE,
            text=True,
            timeout=_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: `{command}` did not end within {_TIMEOUT} s", pytrace=False)


def _write(block: Block, scratch: Path) -> None:
    name = block.file_name
    assert name is not None
    target = scratch / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".py" and target.parent != scratch:
        for parent in target.relative_to(scratch).parents:
            if parent != Path("."):
                (scratch / parent / "__init__.py").touch()
    target.write_text(block.body, encoding="utf-8")


def _check(
    block: Block, scratch: Path, ids: dict[str, str], earlier: list[str], printed: list[str]
) -> None:
    if block.directive in (Directive.EXCERPT, Directive.OUTPUT):
        return
    if block.directive is Directive.PRINTS_JSON:
        shown, real = json_keys(json.loads(block.body)), json_keys(json.loads("\n".join(printed)))
        if shown != real:
            pytest.fail(
                f"{block.where}: the JSON shown differs from what the block above printed: "
                f"only shown {sorted(shown - real)}, only printed {sorted(real - shown)}",
                pytrace=False,
            )
        return
    if block.directive is Directive.PRINTS:
        if not match_output(block.body.splitlines(), printed):
            pytest.fail(
                f"{block.where}: the Python block above printed\n" + "\n".join(printed),
                pytrace=False,
            )
        return
    if block.directive is Directive.CI:
        ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        for command in commands(block.body):
            assert command in ci_script, f"{block.where}: .ci/run does not run `{command}`"
        return
    if block.lang not in _RUNNABLE and block.directive is not Directive.FILE:
        pytest.fail(
            f"{block.where}: a ```{block.lang or '(no language)'} block must be runnable "
            "(python, yaml, json, sh, console) or marked <!-- doc: excerpt --> or "
            "<!-- doc: output -->",
            pytrace=False,
        )
    if block.file_name:
        _write(block, scratch)
    if block.lang == "yaml" and block.directive is not Directive.FILE:
        data = yaml.safe_load(block.body)
        if isinstance(data, dict) and "tasks" in data:
            try:
                name = block.file_name or block.where
                load_dag_text(block.body, source=name, default_id=Path(name).stem)
            except Exception as exc:  # the message is the point
                pytest.fail(f"{block.where}: the definition does not load: {exc}", pytrace=False)
    elif block.lang == "json":
        try:
            json.loads(block.body)
        except ValueError as exc:
            pytest.fail(f"{block.where}: not JSON: {exc}", pytrace=False)
    elif block.lang == "python" and not block.file_name:
        script = scratch / f"_block_{block.line}.py"
        prelude = "\n".join(earlier) if block.directive is Directive.AFTER else ""
        earlier.append(block.body)
        script.write_text(prelude + "\n" + block.body, encoding="utf-8")
        done = _run(f"{sys.executable} {script.name}", scratch, block)
        if done.returncode != 0:
            pytest.fail(
                f"{block.where}: the Python block exited {done.returncode}:\n{done.stderr[-3000:]}",
                pytrace=False,
            )
        printed[:] = done.stdout.splitlines()
    elif block.lang == "sh":
        where = _checkout(scratch) if block.directive is Directive.CLEAN_CHECKOUT else scratch
        for command in commands(block.body):
            command = _substitute(command, ids)
            done = _run(command, where, block)
            if done.returncode != 0:
                pytest.fail(
                    f"{block.where}: `{command}` exited {done.returncode}:\n"
                    f"{done.stdout[-2000:]}{done.stderr[-3000:]}",
                    pytrace=False,
                )
    elif block.lang == "console":
        for step in console_steps(block.body):
            command = _substitute(step.command, ids)
            done = _run(command, scratch, block, merged=True)
            actual = done.stdout.splitlines()
            if not match_output(step.expected, actual):
                pytest.fail(
                    f"{block.where}: `{command}` printed\n"
                    + "\n".join(actual)
                    + "\n--- where the page shows ---\n"
                    + "\n".join(step.expected),
                    pytrace=False,
                )
            ids.update(id_pairs(step.expected, actual))


def _checkout(scratch: Path) -> Path:
    """A copy of the repository's tracked files, as a clean clone has them."""
    target = scratch / "checkout"
    if not target.exists():
        listed = (
            subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
            .stdout.decode()
            .split("\0")
        )
        for name in filter(None, listed):
            source = ROOT / name
            if source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
    return target


def _substitute(command: str, ids: dict[str, str]) -> str:
    for shown, real in ids.items():
        command = command.replace(shown, real)
    return command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(scratch: Path) -> Iterator[str]:
    """A real `tideflow server` with the HTTP API, for the pages whose commands call one."""
    address = f"127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        ["tideflow", "server", "--db", "sqlite:///server.db", "--http", address],
        cwd=scratch,
        env=_env(scratch),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/readyz", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read() if proc.stderr else ""
                    pytest.fail(f"the docs' server did not start: {err}", pytrace=False)
                time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_blocks_run(page: Path, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    # Pages may run the files the README's quick start shows (cli.md runs its hello.yaml).
    for shown in blocks(ROOT / "README.md"):
        if shown.file_name and shown.directive not in (Directive.EXCERPT, Directive.OUTPUT):
            _write(shown, tmp_path)
    with contextlib.ExitStack() as stack:
        ids: dict[str, str] = {}
        if "<!-- doc: server -->" in page.read_text(encoding="utf-8"):
            address = stack.enter_context(_server(tmp_path))
            ids["localhost:8080"] = address
            ids["127.0.0.1:8080"] = address
        _page(page, tmp_path, ids)


def _page(page: Path, tmp_path: Path, ids: dict[str, str]) -> None:
    earlier: list[str] = []
    printed: list[str] = []
    for block in blocks(page):
        _check(block, tmp_path, ids, earlier, printed)


def test_directives_are_known() -> None:
    """A misspelt directive would silently skip a block; refuse it."""
    for page in PAGES:
        for line_no, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if "<!-- doc:" in line:
                kind = line.split("doc:", 1)[1].split()[0].rstrip("-").strip()
                assert kind in {d.value for d in Directive if d.value}, f"{page}:{line_no}: {line}"


def test_console_matching() -> None:
    """The output matcher accepts what it should and nothing else."""
    assert match_output(["a", "...", "d"], ["a", "b", "c", "d"])
    assert match_output(["id 01M8CJC5GBB3EXXYZE2N58XGRX"], ["id 01J0000000000000000000000A"])
    assert not match_output(["a", "b"], ["a", "c"])
    assert not match_output(["a"], ["a", "extra"])
