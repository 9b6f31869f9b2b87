"""Following a task's log from another process: one process runs the task, this one reads
its lines from the database as they are written, within a second."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tideflow import Engine

from .logwriter import LINES

WRITER = Path(__file__).with_name("logwriter.py")


@pytest.mark.postgres
async def test_follow_from_another_process(make_engine: Callable[..., Engine],
                                           postgres_url: str) -> None:
    proc = subprocess.Popen([sys.executable, str(WRITER), postgres_url],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        iid = proc.stdout.readline().strip()
        assert iid, "the writer did not start a run"
        delays: list[float] = []
        stamps: list[float] = []
        streams: list[str] = []
        async with make_engine(postgres_url, recover=False, node_id="watcher") as eng:
            async for line in eng.follow_task_logs(iid, "tick"):
                streams.append(line.stream)
                if line.stream == "stdout":
                    stamps.append(float(line.text))
                    delays.append(time.time() - float(line.text))
            last = line
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert len(stamps) == LINES and stamps == sorted(stamps)
    assert last.text == "attempt 1 succeeded"
    # written every 0.2 s, read every 0.25 s: each line seen well within a second
    print(f"follow delays: median {sorted(delays)[len(delays) // 2]:.3f}s, max {max(delays):.3f}s")
    assert max(delays) < 1.0, delays
