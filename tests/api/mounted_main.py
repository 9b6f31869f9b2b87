"""tideflow's API mounted in a user's own FastAPI service, served by the user's uvicorn on
every address (0.0.0.0), as a service would be; run by the API tests.

    python tests/api/mounted_main.py --db URL [--open] [--token TOKEN]

Prints ``LISTENING <port>`` once it accepts connections; stops on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvicorn
from fastapi import FastAPI

from tideflow import Engine
from tideflow.api import ApiAuth, create_app


async def main(args: argparse.Namespace) -> None:
    async with Engine.from_url(args.db) as engine:
        outer = FastAPI()

        @outer.get("/hello")
        async def hello() -> dict[str, str]:
            return {"hello": "world"}

        if args.open:
            flows = create_app(engine, auth=None)
        elif args.token:
            flows = create_app(engine, auth=ApiAuth([args.token]))
        else:
            flows = create_app(engine)
        outer.mount("/flows", flows)
        server = uvicorn.Server(uvicorn.Config(outer, host="0.0.0.0", port=0,
                                               log_level="warning", lifespan="off"))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: setattr(server, "should_exit", True))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"LISTENING {port}", flush=True)
        await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--open", action="store_true")
    parser.add_argument("--token")
    asyncio.run(main(parser.parse_args()))
