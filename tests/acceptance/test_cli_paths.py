"""Paths and URLs the CLI cannot use get one `error:` line and exit code 2, never a traceback:
a SQLite folder that cannot be created, a file that cannot be opened for writing, a port out
of range — for `run`, the client verbs and `db upgrade` alike. And `tideflow run` on a full disk
ends within seconds of Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .clihelp import Cli

DAG = """
id: hello
tasks:
  - id: a
    actionName: shell
    params: {cmd: ["echo", "hi"]}
"""

BAD_DBS = [
    ("sqlite:////proc/no-such-dir/t.db", "folder of the SQLite database '/proc/no-such-dir/t.db' "
                                         "cannot be created"),
    ("sqlite:////dev/null/t.db", "/dev/null is not a folder"),
    ("sqlite:////proc/self/t.db", "'/proc/self/t.db' cannot be opened for writing"),
    ("postgresql://postgres@127.0.0.1:70000/x", "has port 70000; a port is 1 to 65535"),
    ("mysql://root@127.0.0.1:0/x", "has port 0; a port is 1 to 65535"),
]


def _one_error(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    text = " ".join(proc.stderr.split())
    assert text.startswith("error: ") and text.count("error:") == 1, proc.stderr
    assert expected in text, text


@pytest.mark.parametrize(("db", "expected"), BAD_DBS)
def test_run_with_an_unusable_database(cli: Cli, db: str, expected: str) -> None:
    path = cli.write("hello.yaml", DAG)
    _one_error(cli.run("run", str(path), "--db", db), expected)


@pytest.mark.parametrize("verb", [["ins", "list"], ["dag", "list"], ["db", "upgrade"]])
def test_client_verbs_with_an_unusable_database(cli: Cli, verb: list[str]) -> None:
    for db, expected in BAD_DBS[:2] + BAD_DBS[3:4]:
        _one_error(cli.run(*verb, "--db", db), expected)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 400 KiB tmpfs: room for the schema and a few tasks, then full."""
    where = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(where)],
                           capture_output=True, check=False)
    if mount.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root): "
                    + mount.stderr.decode(errors="replace").strip())
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_ctrl_c_on_a_full_disk_ends_within_seconds(cli: Cli, full_disk: Path) -> None:
    chain = "\n".join(
        f"  - {{id: t{i}, actionName: shell, params: {{cmd: [sh, -c, 'seq 1 3000']}}"
        + (f", dependOn: [t{i - 1}]}}" if i else "}")
        for i in range(80))
    path = cli.write("chain.yaml", f"id: chain\ntasks:\n{chain}\n")
    proc = cli.popen("run", str(path), "--db", f"sqlite:///{full_disk / 't.db'}")
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while (not any("state writes failing" in ln for ln in lines)
               and time.monotonic() < deadline and proc.poll() is None):
            time.sleep(0.2)
        assert any("state writes failing" in ln for ln in lines), "".join(lines)[-2000:]
        assert proc.poll() is None, "run gave up by itself; it waits for writes"
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        proc.wait(timeout=30)
        took = time.monotonic() - start
        reader.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seen = "".join(lines)
    assert proc.returncode == 1
    assert took < 12, took
    assert "Traceback" not in seen, seen[-3000:]
    assert "interrupted: canceling the instance" in seen
