"""Wake-ups across nodes.

PostgreSQL: LISTEN/NOTIFY on a dedicated connection (one NOTIFY per batch of changes; after a
reconnect every loop is woken once to catch up). MySQL/MariaDB and SQLite have no such
channel: the loops poll, fast while busy and backing off to about a second when idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.engine import URL

log = logging.getLogger("tideflow.cluster")


class WakeChannel:
    """One loop's view of the wake-ups: a poke sets every channel, so a loop that is busy
    when it comes still sees it at its next wait (one shared event would be cleared by
    whichever loop woke first)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def event(self) -> asyncio.Event:
        """Set by a poke (for a wait on another clock; clear it after)."""
        return self._event

    async def wait(self, timeout: float) -> bool:
        """Wait for a poke (True) or ``timeout`` (False); either way the channel is clear."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # arrives together with the poke, and the loop then never stops (engine close hangs)
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
            woke = True
        except TimeoutError:
            woke = False
        self._event.clear()
        return woke


class Waker:
    """Polling only: ``notify`` pokes this node's own loops; other nodes poll."""

    #: whether other nodes' changes wake this node (else the callers poll faster)
    pushes = False

    def __init__(self) -> None:
        self._channels: list[WakeChannel] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def channel(self) -> WakeChannel:
        """A new channel for one loop of this node."""
        ch = WakeChannel()
        self._channels.append(ch)
        return ch

    def poke(self) -> None:
        """Wake this node's loops."""
        for ch in self._channels:
            ch.set()

    def notify(self) -> None:
        """Tell every node that something changed (instances, assignments, commands, DAGs)."""
        self.poke()


class PostgresWaker(Waker):
    pushes = True

    def __init__(self, url: URL, channel: str) -> None:
        super().__init__()
        self._url = url
        self.channel_name = channel
        self._conn: Any = None
        self._pending = False
        self._sender: asyncio.Task[None] | None = None
        self._closed = False
        self._kick = asyncio.Event()

    def _connect_args(self) -> dict[str, Any]:
        u = self._url
        return {
            "host": u.host or "localhost",
            "port": u.port or 5432,
            "user": u.username,
            "password": u.password,
            "database": u.database,
        }

    async def start(self) -> None:
        await self._connect()
        self._sender = asyncio.get_running_loop().create_task(
            self._send_loop(), name="tideflow-notify"
        )

    async def _connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(**self._connect_args(), timeout=10)
        await conn.add_listener(self.channel_name, self._on_notify)
        conn.add_termination_listener(self._on_lost)
        self._conn = conn
        self.poke()  # catch up with whatever happened while not listening

    def _on_notify(self, *args: Any) -> None:
        self.poke()

    def _on_lost(self, *args: Any) -> None:
        self._conn = None
        self._kick.set()

    def notify(self) -> None:
        self.poke()
        self._pending = True
        self._kick.set()

    async def _send_loop(self) -> None:
        delay = 0.1
        while not self._closed:
            await self._kick.wait()
            self._kick.clear()
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._connect()
                if self._pending:
                    self._pending = False  # one NOTIFY carries every change made so far
                    await self._conn.execute("SELECT pg_notify($1, '')", self.channel_name)
                if delay > 0.1:
                    log.info("notification channel up again")
                delay = 0.1
            except Exception as exc:  # the database is away: retry with back-off
                # one warning per outage, not one per retry
                log.log(logging.WARNING if delay == 0.1 else logging.DEBUG,
                        "notification channel down (%s); retrying in %.1fs", exc, delay)
                self._conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._kick.set()

    async def close(self) -> None:
        self._closed = True
        self._kick.set()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()


def make_waker(url: URL, backend: str, prefix: str) -> Waker:
    if backend == "postgresql":
        return PostgresWaker(url, f"{prefix}events")
    return Waker()
