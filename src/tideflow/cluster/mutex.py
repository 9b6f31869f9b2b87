"""A distributed mutex on the Keeper's leases.

    async with Mutex(keeper, "resize-cluster-7", identity="node-a", ttl_secs=30) as m:
        ...            # m.token fences writes made under the lock

``identity`` makes it re-entrant: acquiring again with the same identity while held extends
the lease and returns the same token. ``release()`` returns False (and the context manager
raises LockLostError) when the lock had already been lost: expired and taken by another.
With ``auto_extend`` the lease is renewed in the background at a third of its TTL."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from types import TracebackType

from ..errors import InputError, LockLostError
from .keeper import Keeper

_PREFIX = "mutex:"


class Mutex:
    def __init__(
        self,
        keeper: Keeper,
        name: str,
        *,
        identity: str | None = None,
        ttl_secs: float = 30.0,
        auto_extend: bool = False,
    ) -> None:
        if not name or len(name) > 150:
            raise InputError("a mutex name must be 1 to 150 characters")
        if ttl_secs <= 0:
            raise InputError("a mutex TTL must be positive")
        self.keeper = keeper
        self.name = name
        self.identity = identity or uuid.uuid4().hex
        self.ttl_secs = ttl_secs
        self.auto_extend = auto_extend
        self.token: int | None = None
        self._extender: asyncio.Task[None] | None = None
        self.lost = False

    @property
    def _lease(self) -> str:
        return _PREFIX + self.name

    async def try_acquire(self) -> bool:
        """One attempt; True when held (newly or again by the same identity)."""
        lease = await self.keeper.acquire_lease(self._lease, self.identity, self.ttl_secs)
        if lease is None:
            return False
        self.token = lease.token
        self.lost = False
        if self.auto_extend and self._extender is None:
            self._extender = asyncio.get_running_loop().create_task(
                self._extend(), name=f"tideflow-mutex-{self.name}"
            )
        return True

    async def acquire(self, timeout: float | None = None, *, poll_secs: float = 0.2) -> int:
        """Wait until held (or ``timeout`` seconds pass: TimeoutError); returns the token."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not await self.try_acquire():
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"mutex {self.name!r} is held by another holder")
            await asyncio.sleep(poll_secs * (0.5 + random.random()))
        assert self.token is not None
        return self.token

    async def extend(self) -> bool:
        """Renew the lease now; False when it was lost."""
        if self.token is None:
            return False
        ok = await self.keeper.renew_lease(self._lease, self.identity, self.token, self.ttl_secs)
        self.lost = not ok
        return ok

    async def _extend(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_secs / 3)
            if not await self.extend():
                return

    async def release(self) -> bool:
        """Unlock; False when the lock had already been lost."""
        if self._extender is not None:
            self._extender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._extender
            self._extender = None
        if self.token is None:
            return False
        ok = await self.keeper.release_lease(self._lease, self.identity, self.token)
        self.token = None
        return ok

    async def __aenter__(self) -> Mutex:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not await self.release() and exc_type is None:
            raise LockLostError(
                f"mutex {self.name!r} was lost before it was released (its TTL of "
                f"{self.ttl_secs:g}s ran out and another holder took it)"
            )
