"""Every command's --help prints (its text is Rich markup: a stray bracket in a help string
made `tideflow server --help` crash)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from tideflow.cli.main import app


def _paths(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    # typer's own click: a group is what has sub-commands
    for name, cmd in getattr(group, "commands", {}).items():
        yield from _paths(cmd, (*prefix, name))


def test_every_help_prints() -> None:
    root = typer.main.get_command(app)
    paths = list(_paths(root))
    assert ("server",) in paths and ("ins", "logs") in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output, result.exception)
        assert "Usage" in result.output, path
