"""The pytest plugin of the test kit. Installed with tideflow, pytest loads it on its own
(the ``pytest11`` entry point); ``pytest_plugins = ["tideflow.testing.pytest"]`` in a
``conftest.py`` does the same where entry points are turned off.

Fixtures: ``skipping_clock`` (a fresh :class:`~tideflow.testing.SkippingClock`) and
``tideflow_kit`` (a :class:`~tideflow.testing.Kit` on that clock)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .clock import SkippingClock
    from .kit import Kit


@pytest.fixture
def skipping_clock() -> SkippingClock:
    """A clock on which sleeps take no real time."""
    from .clock import SkippingClock

    return SkippingClock()


@pytest.fixture
def tideflow_kit(skipping_clock: SkippingClock) -> Kit:
    """Contexts for actions and in-memory engines, all on ``skipping_clock``."""
    from .kit import Kit

    return Kit(skipping_clock)
