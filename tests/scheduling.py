"""How the suite shares the machine when it runs on several pytest-xdist workers.

Tests that start real server processes (marker ``cluster``, and everything under ``chaos/`` and
``outage/``) go to one worker as one group: they measure leases and failover in seconds, and two
of them at once would double the processes contending for the cores. A test marked ``alone``
(the CPU-starvation chaos run, which loads every core on purpose) runs with no other test
anywhere: every test holds a shared lock on one file for its whole run, and an ``alone`` test
an exclusive one. Without xdist these locks cost one ``flock`` per test and change nothing.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PROCESS_GROUP = "processes"
_PROCESS_DIRS = ("chaos", "outage")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "alone: runs with no other test at the same time (it loads every core)")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if item.get_closest_marker("cluster") or any(d in parts for d in _PROCESS_DIRS):
            item.add_marker(pytest.mark.xdist_group(PROCESS_GROUP))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    # a pytest / pytest-xdist pair whose grouping does not work would run the server-process
    # tests side by side, quietly: refuse to run instead
    if not session.config.getvalue("loadgroup"):
        return
    for item in session.items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            raise pytest.UsageError(
                f"pytest-xdist did not group {item.nodeid}: this pytest and pytest-xdist "
                "do not work together (see the pin in pyproject.toml)")


def _lock_path() -> Path | None:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return None  # one process: nothing runs beside a test anyway
    return Path(tempfile.gettempdir()) / f"tideflow-tests-{run}.lock"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    path = _lock_path()
    if path is None:
        yield
        return
    mode = fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH
    with open(path, "a") as f:
        # held from setup to teardown: an `alone` test waits for the test in flight on the
        # other workers, and they wait for it before their next one
        fcntl.flock(f, mode)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
