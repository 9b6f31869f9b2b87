"""A service process that embeds :class:`tideflow.Engine` as a cluster worker with the
library's default cluster settings (what an application does, rather than `tideflow server`).

    python tests/cluster/embedded_node.py DB_URL NODE_ID

It prints ``ready`` once the node has joined, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import cluster_actions

from tideflow import ActionRegistry, Engine, EngineSettings
from tideflow.cluster.node import ClusterSettings


async def main(url: str, node_id: str) -> None:
    registry = ActionRegistry()
    cluster_actions.register_actions(registry)
    engine = Engine.from_url(url, actions=registry, settings=EngineSettings(
        node_id=node_id, cluster=ClusterSettings()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with engine:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
