"""A tideflow worker node serving the HTTP API, run in a subprocess by the API and CLI tests.

    python tests/api/server_main.py --db URL [--token-file FILE] [--node-id ID]

Prints ``LISTENING <port>`` once it accepts connections; stops on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from tideflow import ActionContext, ActionError, ActionRegistry, Engine, EngineSettings
from tideflow.api import ApiAuth, create_app, serve
from tideflow.cluster.node import ClusterSettings


async def _sleep(ctx: ActionContext, params: Any) -> None:
    await asyncio.sleep(float((params or {}).get("secs", 1)))


def _fail(ctx: ActionContext, params: Any) -> None:
    raise ActionError(str((params or {}).get("reason", "boom")))


def _ok(ctx: ActionContext, params: Any) -> None:
    ctx.trace("ok ran")


def actions() -> ActionRegistry:
    registry = ActionRegistry()
    registry.add_function("sleep", _sleep)
    registry.add_function("fail", _fail)
    registry.add_function("ok", _ok)
    return registry


async def main(args: argparse.Namespace) -> None:
    settings = EngineSettings(
        node_id=args.node_id,
        cluster=ClusterSettings(role="worker", heartbeat_secs=0.5, unhealthy_secs=3,
                                lease_secs=3),
    )
    engine = Engine.from_url(args.db, actions=actions(), settings=settings)
    auth = ApiAuth.from_sources(token_file=args.token_file) if args.token_file else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def listening(host: str, port: int) -> None:
        print(f"LISTENING {port}", flush=True)

    async with engine:
        app = create_app(engine, auth=auth, max_body_bytes=args.max_body)
        await serve(app, "127.0.0.1", 0, stop=stop, on_listening=listening)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--node-id", default="api-test-node")
    parser.add_argument("--max-body", type=int, default=64 * 1024)
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
