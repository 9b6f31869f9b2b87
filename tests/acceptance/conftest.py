"""Acceptance tests drive the real ``tideflow`` command in a subprocess."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .clihelp import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def task_by_id() -> Callable[[dict[str, Any]], dict[str, dict[str, Any]]]:
    return lambda inst: {t["taskId"]: t for t in inst["tasks"]}
