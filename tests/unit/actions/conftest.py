"""Fixtures for the built-in action tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from action_probe import Probe, make_probe

HERE = Path(__file__).resolve().parent


@pytest.fixture
def probe() -> Probe:
    return make_probe()


@pytest.fixture
def targets_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``pyaction_targets`` (next to this file) importable whatever the import mode."""
    monkeypatch.syspath_prepend(str(HERE))
