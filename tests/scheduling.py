"""How the suite shares the machine when it runs on several pytest-xdist workers.

Tests that start real server processes (marker ``cluster``, and everything under ``chaos/`` and
``outage/``) go to one worker as one group: they measure leases and failover in seconds, and two
of them at once would double the processes contending for the cores. A test marked ``alone``
(the CPU-starvation chaos run, which loads every core on purpose) runs with no other test
anywhere: every test holds a shared lock on one file for its whole run, and an ``alone`` test
an exclusive one (behind a turnstile, so that it is not starved). Without xdist there are no
locks.
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
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist workers only
        return
    for item in session.items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            raise pytest.UsageError(
                f"pytest-xdist did not group {item.nodeid}: this pytest and pytest-xdist "
                "do not work together (see the pin in pyproject.toml)")


def _lock_paths() -> tuple[Path, Path] | None:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return None  # one process: nothing runs beside a test anyway
    base = Path(tempfile.gettempdir()) / f"tideflow-tests-{run}"
    return base.with_suffix(".gate"), base.with_suffix(".lock")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    paths = _lock_paths()
    if paths is None:
        yield
        return
    alone = item.get_closest_marker("alone") is not None
    with open(paths[0], "a") as gate, open(paths[1], "a") as lock:
        # A turnstile: an `alone` test holds the gate while it waits for the tests in flight
        # to end, so the other workers cannot start new ones meanwhile (flock alone would let
        # a worker that runs test after test keep its shared lock for ever).
        fcntl.flock(gate, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
