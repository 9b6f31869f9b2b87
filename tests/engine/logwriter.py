"""A process that runs a DAG whose shell task prints a timestamp every 0.1 s, for the test of
following its log from another process. Prints the instance id, then waits for the end."""

from __future__ import annotations

import asyncio
import sys

from tideflow import Engine, EngineSettings, load_dag_dict

LINES = 30


async def main(url: str) -> None:
    settings = EngineSettings(node_id="writer")
    async with Engine.from_url(url, settings=settings) as engine:
        await engine.register_dag(load_dag_dict({"id": "ticker", "tasks": [{
            "id": "tick", "actionName": "shell",
            "params": {"cmd": f"for i in $(seq 1 {LINES}); do date +%s.%N; sleep 0.1; done",
                       "shell": True}}]}))
        inst = await engine.run_dag("ticker")
        print(inst.id, flush=True)
        await engine.wait_for(inst.id, timeout=60)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
