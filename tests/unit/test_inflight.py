"""Stopping a node's loops cancels them between two database calls, never inside one."""

from __future__ import annotations

import asyncio

from tideflow.cluster.inflight import InFlight


async def test_stop_waits_for_the_call_in_flight_then_cancels_between_calls() -> None:
    calls = InFlight()
    finished: list[int] = []
    started = asyncio.Event()

    async def loop() -> None:
        n = 0
        while True:
            async with calls.call():
                started.set()
                await asyncio.sleep(0.2)  # a query under way
                finished.append(n)
            n += 1
            await asyncio.sleep(0)  # the next call starts at once

    task = asyncio.get_running_loop().create_task(loop())
    await started.wait()
    await calls.stop([task])
    assert task.cancelled()
    # the call under way when stop was asked ended; any call after it did too
    assert finished and finished == list(range(len(finished)))


async def test_a_hung_call_is_cancelled_after_the_grace() -> None:
    calls = InFlight()
    entered = asyncio.Event()

    async def hung() -> None:
        async with calls.call():
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.get_running_loop().create_task(hung())
    await entered.wait()
    t0 = asyncio.get_running_loop().time()
    await calls.stop([task], grace=0.2)
    assert task.cancelled()
    assert 0.15 < asyncio.get_running_loop().time() - t0 < 2
