"""Actions for the cluster tests: each execution is appended to a log file, one line per
attempt (node, instance, task, attempt, wall time), so the tests can check for lost or doubled
work."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from tideflow import ActionContext, ActionRegistry, TideflowError

LOG = os.environ.get("TIDEFLOW_TEST_EXEC_LOG", "/tmp/tideflow-exec.log")
NODE = os.environ.get("TIDEFLOW_TEST_NODE", "?")


def _record(ctx: ActionContext) -> None:
    # the wall time last: the chaos run matches it against the times of its faults
    line = f"{NODE} {ctx.instance_id} {ctx.task_id} {ctx.attempt} {time.time():.6f}\n".encode()
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write: lines from many processes do not interleave
    finally:
        os.close(fd)


async def noop(ctx: ActionContext, params: Any) -> None:
    _record(ctx)
    delay = float(params.get("sleep", 0)) if isinstance(params, dict) else 0.0
    if delay:
        await asyncio.sleep(delay)


async def fail_while(ctx: ActionContext, params: Any) -> None:
    """Fails while the file named by ``path`` exists (the test removes it to let it pass)."""
    _record(ctx)
    if os.path.exists(params["path"]):
        raise RuntimeError(f"{params['path']} exists")


async def hold_while(ctx: ActionContext, params: Any) -> None:
    """Runs (holding its slot) while the file named by ``path`` exists."""
    _record(ctx)
    while os.path.exists(params["path"]):
        await asyncio.sleep(0.05)


async def fragile(ctx: ActionContext, params: Any) -> None:
    """At most one at a time across the cluster: logs its start and end times."""
    path = params["log"]
    with open(path, "a") as f:
        f.write(f"start {time.time():.6f} {NODE}\n")
    await asyncio.sleep(0.15)
    with open(path, "a") as f:
        f.write(f"end {time.time():.6f} {NODE}\n")


_keeper: Any = None
_keeper_lock: asyncio.Lock | None = None


async def _shared_keeper() -> Any:
    """This process's own Keeper: a store on the cluster's database, or on etcd when the
    cluster keeps its leases there (one per process, opened once)."""
    global _keeper, _keeper_lock
    if _keeper_lock is None:
        _keeper_lock = asyncio.Lock()
    async with _keeper_lock:
        if _keeper is None:
            from tideflow.store.url import make_store

            store = make_store(os.environ["TIDEFLOW_TEST_DB"])
            await store.open(migrate=False)
            if os.environ.get("TIDEFLOW_TEST_KEEPER"):
                from tideflow.cluster.etcd import make_keeper

                etcd = make_keeper(os.environ["TIDEFLOW_TEST_KEEPER"], store,
                                   table_prefix="tf_")
                await etcd.open()
                _keeper = etcd
            else:
                _keeper = store
    return _keeper


class _Witness:
    """Passes a Keeper through, keeping the lease record the last acquisition returned (the
    database's acquire time and expiry, which the Mutex itself does not expose)."""

    def __init__(self, keeper: Any) -> None:
        self.keeper = keeper
        self.lease: Any = None
        #: wall times around the successful call: where a late grant spent its time
        self.called = self.returned = 0.0

    async def acquire_lease(self, name: str, holder: str, ttl_secs: float) -> Any:
        called = time.time()
        lease = await self.keeper.acquire_lease(name, holder, ttl_secs)
        if lease is not None:
            self.lease, self.called, self.returned = lease, called, time.time()
        return lease

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.keeper, attr)


def _append(path: str, record: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


async def guarded(ctx: ActionContext, params: Any) -> None:
    """A no-op that, given ``mutex``, holds that distributed mutex (TTL ``ttl``, no
    auto-extend) for ``hold`` seconds. Each critical section appends to ``mutexLog`` an
    ``enter`` line (token, the database's acquire time and expiry, wall time on entering)
    and a ``leave`` line (wall time on leaving, then whether the release found the lock still
    held), so the chaos run can check from the outside that holders never overlapped except
    where one outlived its TTL and the next had a greater token. A database that is briefly
    unreachable is waited out: the lock is the point here, not the error."""
    _record(ctx)
    name = params.get("mutex") if isinstance(params, dict) else None
    if not name:
        return
    from tideflow.cluster.mutex import Mutex

    log_path = params["mutexLog"]
    ttl = float(params.get("ttl", 2.0))
    hold = float(params.get("hold", 0.05))
    holder = f"{NODE}/{os.getpid()}/{ctx.instance_id}/{ctx.task_id}/{ctx.attempt}"
    give_up = time.monotonic() + float(params.get("patience", 120))
    while True:
        try:
            witness = _Witness(await _shared_keeper())
            lock = Mutex(witness, name, identity=holder, ttl_secs=ttl)  # type: ignore[arg-type]
            token = await lock.acquire(timeout=max(0.1, give_up - time.monotonic()),
                                       poll_secs=0.05)
            break
        except TideflowError:
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(0.2)
    lease = witness.lease
    base = {"name": name, "token": token, "holder": holder, "node": NODE}
    _append(log_path, {**base, "event": "enter", "enter": time.time(),
                       "acquired": lease.acquired_at.timestamp(),
                       "expires": lease.expires_at.timestamp(),
                       "called": witness.called, "returned": witness.returned})
    try:
        await asyncio.sleep(hold)
    finally:
        _append(log_path, {**base, "event": "leave", "leave": time.time()})
        try:
            released = "released" if await lock.release() else "lost"
        except TideflowError as exc:
            released = f"error: {exc}"
        _append(log_path, {**base, "event": "release", "result": released,
                           "done": time.time()})


def register_actions(registry: ActionRegistry) -> None:
    registry.add_function("fragile", fragile, max_concurrency=1)
    registry.add_function("noop", noop)
    registry.add_function("fail_while", fail_while)
    registry.add_function("hold_while", hold_while)
    registry.add_function("guarded", guarded)
