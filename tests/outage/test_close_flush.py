"""close() while every state write fails (a full disk, a database gone) gives up after
close_flush_secs, says which instances stay unfinished, and leaves them for recovery."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from tideflow import ActionContext, ActionRegistry, Engine, EngineSettings, InstanceStatus
from tideflow.store import Fault, FaultPlan, FaultyStore
from tideflow.store.url import make_store


async def test_close_gives_up_on_failing_writes(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "tideflow")
    url = f"sqlite:///{tmp_path / 't.db'}"
    registry = ActionRegistry()
    started = asyncio.Event()

    async def slow(ctx: ActionContext, params: Any) -> None:
        started.set()
        await asyncio.sleep(0.3)

    registry.add_function("slow", slow)
    store = FaultyStore(make_store(url), FaultPlan(methods={"write": Fault(error_before=1.0)}))
    store.enabled = False
    engine = Engine(store, actions=registry,
                    settings=EngineSettings(node_id="n", close_flush_secs=1.0))
    await engine.start()
    await engine.register_dag({"id": "d", "tasks": [{"id": "a", "actionName": "slow"}]})
    inst = await engine.run_dag("d")
    await started.wait()
    store.enabled = True  # from now on every write fails, as on a full disk
    await asyncio.sleep(0.6)
    begin = time.monotonic()
    await engine.close()
    assert time.monotonic() - begin < 6
    gave_up = [r.getMessage() for r in caplog.records if "gave up writing" in r.getMessage()]
    assert gave_up and inst.id in gave_up[0]
    # the instance stays unfinished in the database, for the next engine to recover
    async with Engine.from_url(url, actions=registry,
                               settings=EngineSettings(node_id="n")) as again:
        final = await again.wait_for(inst.id, timeout=30)
    assert final.status == InstanceStatus.SUCCESS
