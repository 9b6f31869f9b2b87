"""A node's part in the cluster: membership and heartbeats, the leader election, the leader's
Dispatcher and WatchDog, and the worker's claim loop.

Safety does not rest on a leader noticing in time that it lost its lease: every write the
leader makes is fenced by its lease token in the same statement, and every write a worker
makes to an instance is fenced by that instance's ownership epoch. The local checks here
(stepping down when a renewal fails or is overdue) only keep a deposed leader from wasting
work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..clock import utcnow
from ..errors import InputError, StoreError, TideflowError
from ..store.records import NodeRecord
from .beats import LoopThread
from .inflight import InFlight
from .keeper import LEADER_LEASE, Beat, Keeper, holder_id
from .scheduling import LeaderFence, Pending, SchedulingStore
from .settings import ClusterSettings as ClusterSettings  # documented here first
from .waker import Waker

if TYPE_CHECKING:
    from ..engine.engine import Engine

from ..engine.oplog import IDS_ATTR

log = logging.getLogger("tideflow.cluster")

#: how much of a lease a leader trusts, counted from the moment it asked for it: the lease
#: ends by the database's clock, which can run a little faster than this node's
_LEASE_TRUST = 0.8
#: why a leader steps down when its node stops (logged at INFO: nothing is wrong)
_STOPPING = "node stopping"


class ClusterNode:
    def __init__(
        self,
        engine: Engine,
        keeper: Keeper,
        sched: SchedulingStore,
        waker: Waker,
        settings: ClusterSettings,
    ) -> None:
        self.engine = engine
        self.keeper = keeper
        self.sched = sched
        self.waker = waker
        self.settings = settings
        self.node_id = engine.node_id
        self.incarnation = engine.incarnation
        self.holder = holder_id(self.node_id, self.incarnation)
        self.is_leader = False
        self.lease_token: int | None = None
        #: monotonic deadline past which a leader that could not renew stops acting
        self._lease_valid_until = 0.0
        self._leader_tasks: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        #: the database calls in flight on the main loop: stopping cancels between two
        self._calls = InFlight()
        self._busy_until = 0.0
        #: one wake-up channel per loop, so that a poke reaches each of them
        self._dispatch_wake = waker.channel()
        self._claim_wake = waker.channel()
        self.cron_wake = waker.channel()
        #: the live nodes as the leader last saw them; a change wakes the WatchDog
        self._live: frozenset[str] | None = None
        self._watch_now = asyncio.Event()
        #: instances the last dispatch round left waiting
        self._held = 0
        #: unfinished instances per worker, as the database had them at the round's start
        self._load: dict[str, int] = {}
        #: what the current round (dispatch or move) gave each worker
        self._round: dict[str, int] = {}
        #: set when this worker's slots became all taken or one freed: report it now
        self._report_load = asyncio.Event()
        self.closed = False
        #: called when this node's row was taken over by a newer incarnation
        self.on_replaced: Callable[[], Awaitable[None]] | None = None
        #: whether the membership loop holds the lease (is_leader follows it on the main
        #: loop), and why it last gave it up
        self._holds = False
        self._gave_up = ""
        #: the heartbeat's own thread and Keeper, when the store can have a twin
        self._beats: LoopThread | None = None
        self._beat_keeper: Keeper = keeper
        self._main: asyncio.AbstractEventLoop | None = None

    @property
    def is_worker(self) -> bool:
        return self.settings.role == "worker"

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        failures = 0
        while True:
            try:
                await self._register()
                break
            except StoreError as exc:
                # the database is restarting or briefly out of reach: a node that starts
                # meanwhile waits for it rather than exiting
                failures += 1
                _failed(failures, "joining the cluster", exc)
                await asyncio.sleep(_retry_delay(failures, 5.0))
        await self.waker.start()
        loop = self._main = asyncio.get_running_loop()
        twin = self.keeper.dedicated()
        if twin is not None:
            beats = LoopThread(f"tideflow-heartbeat-{self.node_id}")
            beats.start()
            try:
                await beats.call(twin.open_dedicated())
            except BaseException:
                await beats.stop()
                raise
            self._beats, self._beat_keeper = beats, twin
            beats.submit(self._membership())
        else:
            self._tasks.append(loop.create_task(self._membership(),
                                                name="tideflow-membership"))
        if self.is_worker:
            self._tasks.append(loop.create_task(self._claim_loop(), name="tideflow-claim"))
            self.engine.on_saturation(lambda _full: self._report_load.set())
            self._tasks.append(loop.create_task(self._load_reports(),
                                                name="tideflow-load-report"))

    async def _register(self) -> None:
        """Take this node's row. A previous incarnation that still heartbeats gets one lease
        to stop (a restarted pod); a node that keeps heartbeating is another live node with
        the same id: an error."""
        s = self.settings
        existing = await self.keeper.get_node(self.node_id)
        if existing is not None and existing.incarnation != self.incarnation:
            first = existing.heartbeat_at
            now = await self.keeper.db_now()
            if (now - first).total_seconds() < s.unhealthy_secs:
                log.info("node id %s still looks alive; waiting up to %.0fs for it to expire",
                         self.node_id, s.unhealthy_secs)
                deadline = time.monotonic() + s.unhealthy_secs
                while time.monotonic() < deadline:
                    await asyncio.sleep(min(s.heartbeat_secs, 0.5))
                    again = await self.keeper.get_node(self.node_id)
                    if again is None or again.incarnation != existing.incarnation:
                        break
                    if again.heartbeat_at > first:
                        raise InputError(
                            f"another live node already uses the id {self.node_id!r} "
                            f"(pid {again.pid} on {again.host}); give this one another "
                            "--node-id"
                        )
        await self.keeper.put_node(self._node_record())
        if self.is_worker:
            # fencing is by incarnation: whatever an earlier process with this id still
            # does to its instances is refused from now on
            fenced = await self.sched.bump_epochs(self.node_id)
            if fenced:
                log.warning("took over %d instance(s) of this node id's previous "
                            "incarnation", fenced)

    def _node_record(self) -> NodeRecord:
        now = utcnow()
        return NodeRecord(
            node_id=self.node_id,
            incarnation=self.incarnation,
            role=self.settings.role,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=now,
            heartbeat_at=now,
            capacity=self.engine.settings.concurrency if self.is_worker else 0,
            running=0,
            assigned=0,
            labels=dict(self.engine.settings.labels),
            actions=sorted(self.engine.actions.names()) if self.is_worker else [],
        )

    async def stop_loops(self) -> None:
        """Stop picking up work (the claim loop, load reports and, where it runs on the main
        loop, the membership loop), between two of their database calls."""
        await self._calls.stop(self._tasks)

    async def close(self) -> None:
        """Stop acting, give leadership up at once and leave the node list, so that others
        take over this node's work right away."""
        self.closed = True
        if self._beats is not None:
            # no beat may renew the lease once it is released below
            await self._beats.stop(then=self._beat_keeper.close_dedicated())
        self._holds = False
        await self._step_down(_STOPPING)
        await self.stop_loops()
        try:
            if self.lease_token is not None:
                await self.keeper.release_lease(LEADER_LEASE, self.holder, self.lease_token)
            await self.keeper.remove_node(self.node_id, self.incarnation)
        except TideflowError as exc:
            log.warning("could not deregister cleanly: %s", exc)
        self.waker.notify()
        await asyncio.sleep(0)  # let the last notification go out
        await self.waker.close()

    # -- membership and leadership ---------------------------------------------------------
    async def _membership(self) -> None:
        s = self.settings
        failures = 0
        while True:
            started = time.monotonic()
            next_beat = started + s.heartbeat_secs
            try:
                async with self._beat_calls().call():
                    beat = await self._beat(started)
                failures = _recovered(failures, "heartbeat")
                if not beat.alive and await self._rejoin():
                    continue
                if not beat.alive:
                    log.error("node %s was taken over by a newer incarnation; it stops "
                              "executing", self.node_id)
                    self._holds = False
                    self._on_main(self._replaced)
                    return
                lease = beat.lease
                if (self.is_worker and not self._holds and lease is not None
                        and lease.expires_at is not None):
                    # the lease runs out before the next beat: try again right then, so a
                    # dead leader is replaced within one lease rather than lease + beat
                    expires_in = (lease.expires_at - beat.now).total_seconds()
                    next_beat = min(next_beat,
                                    time.monotonic() + max(0.0, expires_in) + 0.02)
            except Exception as exc:  # whatever fails, the node goes on beating
                failures += 1
                _failed(failures, "heartbeat", exc)
            if self._holds and time.monotonic() > self._lease_valid_until:
                self._let_go("could not renew the lease in time")
            await asyncio.sleep(max(0.0, next_beat - time.monotonic()))

    def _beat_calls(self) -> InFlight:
        return self._beats.calls if self._beats is not None else self._calls

    def _on_main(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``fn`` on the node's main loop (the membership loop may run on its own)."""
        assert self._main is not None
        main = self._main

        def go() -> None:
            main.create_task(fn(), name="tideflow-membership-change")

        with contextlib.suppress(RuntimeError):  # the main loop is closing
            main.call_soon_threadsafe(go)

    def _let_go(self, why: str) -> None:
        self._holds = False
        self._gave_up = why
        self._on_main(self._follow_lease)

    async def _follow_lease(self) -> None:
        """Make this node act as the leader exactly while the membership loop holds the
        lease (several changes may arrive at once: the last one wins)."""
        if self.closed:
            return
        if self._holds and not self.is_leader:
            await self._become_leader()
        elif not self._holds and self.is_leader:
            await self._step_down(self._gave_up or "lost the lease")

    async def _replaced(self) -> None:
        await self._step_down("replaced")
        for t in self._tasks:
            t.cancel()
        self.engine.abandon_all()
        if self.on_replaced is not None:
            await self.on_replaced()

    async def _rejoin(self) -> bool:
        """This node's row is not its own any more. Gone — the leader forgot a watcher that
        looked dead while it was merely slow — it registers again and goes on (True). Taken
        by another incarnation — a newer process runs with this id — it must stop (False)."""
        current = await self._beat_keeper.get_node(self.node_id)
        if current is not None and current.incarnation != self.incarnation:
            return False
        await self._beat_keeper.put_node(self._node_record())
        log.warning("node %s was dropped from the node list while it was silent; it joined "
                    "again", self.node_id)
        return True

    async def _beat(self, started: float) -> Beat:
        """One heartbeat, renewing the lease (leader) or campaigning for it (worker)."""
        s = self.settings
        leading = self._holds and self.lease_token is not None
        beat = await self._beat_keeper.beat(
            self.node_id, self.incarnation,
            running=self.engine.slot_load, assigned=self.engine.owned_count,
            holder=self.holder, token=self.lease_token if leading else None,
            campaign=self.is_worker, lease_secs=s.lease_secs,
            unhealthy_secs=s.unhealthy_secs if leading else None,
        )
        if not beat.alive:
            return beat
        lease = beat.lease
        mine = (lease is not None and lease.holder == self.holder
                and lease.expires_at is not None and lease.expires_at > beat.now)
        if leading:
            if mine and lease is not None and lease.token == self.lease_token:
                self._trust_lease(started, beat)
                if beat.live is not None and beat.live != self._live:
                    # a node came or went: the WatchDog looks now, not at its next round
                    self._live = beat.live
                    self._on_main(self._look_now)
            else:
                self._let_go("lost the lease")
        elif self.is_worker:
            if lease is None:
                # the very first leader creates the lease row
                taken = await self._beat_keeper.acquire_lease(LEADER_LEASE, self.holder,
                                                              s.lease_secs)
                mine = taken is not None
                lease = taken
            if mine and lease is not None:
                self.lease_token = lease.token
                if lease is beat.lease:
                    self._trust_lease(started, beat)
                else:  # just created with a full lease
                    self._lease_valid_until = started + s.lease_secs * _LEASE_TRUST
                self._holds = True
                self._live = None  # the new leader's WatchDog takes its first look at once
                self._on_main(self._follow_lease)
        return beat

    async def _look_now(self) -> None:
        self._watch_now.set()

    def _trust_lease(self, started: float, beat: Beat) -> None:
        """Act as the leader until the lease's end as the beat saw it. Its end, not a full
        lease from now: a renewal can pass without extending it (the row was busy)."""
        lease = beat.lease
        assert lease is not None and lease.expires_at is not None
        left = (lease.expires_at - beat.now).total_seconds()
        # the database read its clock after this node's ``started``: counting the time left
        # from ``started`` ends early, never late
        self._lease_valid_until = started + max(0.0, left) * _LEASE_TRUST

    async def _become_leader(self) -> None:
        self.is_leader = True
        log.info("leadership: %s is the leader (token %s)", self.node_id, self.lease_token,
                 extra={IDS_ATTR: {"node": self.node_id}})
        self.engine.emit("leadership_changed", True)
        loop = asyncio.get_running_loop()
        self._load = {}
        self._leader_tasks = [
            loop.create_task(self._dispatch_loop(), name="tideflow-dispatcher"),
            loop.create_task(self._watchdog_loop(), name="tideflow-watchdog"),
        ]
        for hook in self.engine.leader_hooks:
            self._leader_tasks.append(
                loop.create_task(_run(hook(self)), name="tideflow-leader-hook")
            )

    async def _step_down(self, why: str) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        # stepping down as the node stops is routine; losing the lease or being replaced is not
        log.log(logging.INFO if why == _STOPPING else logging.WARNING,
                "leadership: %s stepped down (%s)", self.node_id, why,
                extra={IDS_ATTR: {"node": self.node_id}})
        self.engine.emit("leadership_changed", False)
        await self._calls.stop(self._leader_tasks)
        self._leader_tasks = []

    @property
    def fence(self) -> LeaderFence:
        assert self.lease_token is not None
        return LeaderFence(self.holder, self.lease_token)

    def leading(self) -> bool:
        return self.is_leader and self._holds and time.monotonic() < self._lease_valid_until

    # -- waiting -------------------------------------------------------------------------------
    def mark_busy(self) -> None:
        self._busy_until = time.monotonic() + 2.0

    def _poll_delay(self) -> float:
        s = self.settings
        if self.waker.pushes:
            return s.catchup_secs  # notifications do the rest
        return s.poll_busy_secs if time.monotonic() < self._busy_until else s.poll_idle_secs

    # -- the Dispatcher (leader) ---------------------------------------------------------------
    async def _live_workers(self) -> list[NodeRecord]:
        nodes = await self.keeper.list_nodes(unhealthy_secs=self.settings.unhealthy_secs)
        return [n for n in nodes if n.alive and n.role == "worker"]

    async def _dispatch_loop(self) -> None:
        failures = 0
        while True:
            delay = self._poll_delay()
            try:
                if self.leading():
                    async with self._calls.call():
                        moved = await self.dispatch_once()
                    if failures:
                        # a failed pass may have assigned runs without hearing so (the
                        # commit went through, the reply was lost): wake the workers now
                        self.waker.notify()
                    failures = _recovered(failures, "dispatch")
                    if moved:
                        self.mark_busy()
                        continue
                else:
                    # the lease is being renewed (or its renewal was not heard): look again
                    # after the next heartbeat, not at the catch-up half a minute away
                    delay = min(delay, self.settings.heartbeat_secs)
            except Exception as exc:  # a loop that stopped would stop the node
                failures += 1
                _failed(failures, "dispatch", exc)
                self.engine.emit("dispatched", 0, 0.0, False)
            if self._held:
                delay = min(delay, self.settings.poll_idle_secs)
            await self._dispatch_wake.wait(_retry_delay(failures, delay))

    async def dispatch_once(self) -> int:
        """Assign waiting instances to live workers; returns how many were assigned."""
        started = time.monotonic()
        pending = await self.sched.pending_instances(self.settings.dispatch_batch)
        if not pending:
            self._held = 0
            return 0
        workers = await self._live_workers()
        self._load = await self.sched.owner_load()
        self._round = {}
        limits: dict[str, int] = {}
        for p in pending:
            limit = (await self.engine.dag_def(p.dag_id, p.dag_version)).max_active_runs
            if limit is not None:
                limits[p.dag_id] = limit
        active = await self.sched.active_counts(list(limits))
        assignments: list[tuple[str, str]] = []
        waiting: list[tuple[str, str]] = []
        for p in pending:
            limit = limits.get(p.dag_id)
            if limit is not None and active.get(p.dag_id, 0) >= limit:
                why = f"waiting: maxActiveRuns {limit} reached"
                if why != p.reason:
                    waiting.append((p.id, why))
                continue
            chosen, why = await self._choose(p, workers)
            if chosen is None:
                if why != p.reason:
                    waiting.append((p.id, why))
                continue
            assignments.append((p.id, chosen))
            self._round[chosen] = self._round.get(chosen, 0) + 1
            active[p.dag_id] = active.get(p.dag_id, 0) + 1
        assigned = await self.sched.assign(assignments, self.fence)
        # instances held back (a run limit, busy or missing workers) wait for something that
        # sends no notification (a run ending, a slot freeing): look again soon
        self._held = len(pending) - len(assigned)
        await self.sched.set_waiting_reason(waiting, self.fence)
        if assigned:
            self.waker.notify()
            per_worker: dict[str, int] = {}
            for iid, w in assignments:
                if iid in assigned:
                    per_worker[w] = per_worker.get(w, 0) + 1
            log.info("dispatched %d instance(s): %s", len(assigned),
                     ", ".join(f"{w}={n}" for w, n in sorted(per_worker.items())))
        self.engine.emit("dispatched", len(assigned), time.monotonic() - started, True)
        return len(assigned)

    def slot_load(self, w: NodeRecord) -> int:
        """What takes or will take ``w``'s execution slots: the attempts it reported holding
        or waiting for a slot (waits, approvals and other slot-less tasks are not among
        them), plus every instance given to it that its report does not cover yet — assigned
        in an earlier round and not yet picked up, or picked up since it reported — plus
        what this round gave it."""
        unreported = max(0, self._load.get(w.node_id, 0) - w.assigned)
        return w.running + unreported + self._round.get(w.node_id, 0)

    async def _choose(self, p: Pending, workers: list[NodeRecord], *,
                      need_slot: bool = True) -> tuple[str | None, str]:
        """The least loaded live worker that has the DAG's actions and matches the selector,
        or why there is none. With ``need_slot``, only a worker with a free slot: a new run
        waits here rather than in a busy worker's queue, so that runs leave by priority."""
        if not workers:
            return None, "waiting for a worker: no live worker"
        needed = await self.engine.dag_actions(p.dag_id, p.dag_version)
        able = [w for w in workers if needed <= set(w.actions)]
        if not able:
            return None, ("waiting for a worker: no live worker has the actions "
                          + ", ".join(sorted(needed)))
        matching = [w for w in able
                    if all(w.labels.get(k) == v for k, v in p.selector.items())]
        if not matching:
            sel = ", ".join(f"{k}={v}" for k, v in sorted(p.selector.items()))
            return None, f"waiting for a worker: no live worker matches the selector {sel}"
        if need_slot:
            matching = [w for w in matching if self.slot_load(w) < w.capacity]
            if not matching:
                return None, "waiting for a worker: every matching worker is busy"
        best = min(matching, key=lambda w: (
            self.slot_load(w) / max(1, w.capacity),
            self._load.get(w.node_id, 0) + self._round.get(w.node_id, 0), w.node_id))
        return best.node_id, ""

    # -- the WatchDog (leader) -----------------------------------------------------------------
    async def _watchdog_loop(self) -> None:
        # it looks when the leader's beat sees the set of live nodes change, and otherwise
        # only now and then (a dead node's heartbeat ages without any event)
        failures = 0
        while True:
            # after a failed look, or while the lease is being renewed: again soon
            every = self.settings.heartbeat_secs
            try:
                if self.leading():
                    async with self._calls.call():
                        await self.watch_once()
                    if failures:
                        self.waker.notify()  # moves a failed look made unseen
                    failures = _recovered(failures, "watchdog")
                    every = self.settings.catchup_secs
            except Exception as exc:  # a loop that stopped would stop the node
                failures += 1
                _failed(failures, "watchdog", exc)
            # asyncio.timeout, not wait_for: see WakeChannel.wait
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._watch_now.wait()
            self._watch_now.clear()

    async def watch_once(self) -> int:
        """Move the instances of dead (or departed) workers to live ones, and forget the
        watchers (clients among them) that stopped without leaving."""
        pruned = await self.keeper.prune_nodes(role="watcher",
                                               older_than_secs=self.settings.unhealthy_secs)
        if pruned:
            log.info("forgot %d watcher(s) that stopped without leaving", pruned)
        workers = await self._live_workers()
        orphans = await self.sched.orphans([w.node_id for w in workers],
                                           self.settings.dispatch_batch)
        if not orphans:
            return 0
        self._load = await self.sched.owner_load()
        self._round = {}
        moves: list[tuple[Pending, str]] = []
        for p in orphans:
            # accepted work moves even to a busy worker (it queues there): left on a dead
            # one, it would wait for the WatchDog's next look
            chosen, why = await self._choose(p, workers, need_slot=False)
            if chosen is None:
                log.warning("instance %s of dead worker %s cannot move: %s", p.id, p.worker, why)
                continue
            moves.append((p, chosen))
            self._round[chosen] = self._round.get(chosen, 0) + 1
        moved = await self.sched.move(moves, self.fence)
        if moved:
            self.waker.notify()
            log.warning("moved %d instance(s) of dead workers %s", len(moved),
                        ", ".join(sorted({p.worker or "?" for p, _ in moves})))
        return len(moved)

    # -- the claim loop (every worker) --------------------------------------------------------
    async def _claim_loop(self) -> None:
        failures = 0
        while True:
            try:
                async with self._calls.call():
                    changed = await self.claim_once()
                failures = _recovered(failures, "reading this worker's instances")
                if changed:
                    self.mark_busy()
            except Exception as exc:  # a loop that stopped would stop the node
                failures += 1
                _failed(failures, "reading this worker's instances", exc)
            if self.engine.owned_count:
                self.mark_busy()
            await self._claim_wake.wait(_retry_delay(failures, self._poll_delay()))

    async def _load_reports(self) -> None:
        """Write this worker's load as soon as its slots fill up or one frees, rather than
        at its next heartbeat: the Dispatcher sends a full worker nothing more, and sends the
        next waiting run, highest priority first, once a slot frees."""
        while True:
            await self._report_load.wait()
            self._report_load.clear()
            full = self.engine.slot_load >= self.engine.settings.concurrency
            try:
                async with self._calls.call():
                    await self.keeper.heartbeat(self.node_id, self.incarnation,
                                                running=self.engine.slot_load,
                                                assigned=self.engine.owned_count)
            except Exception as exc:  # the next heartbeat reports it
                log.debug("could not report this worker's load: %s", exc)
                continue  # the next heartbeat reports it
            if not full:
                self.waker.notify()  # wake the Dispatcher, wherever it runs

    async def claim_once(self) -> bool:
        """Pick up instances assigned to this worker, and its queued commands."""
        owned = await self.sched.owned(self.node_id)
        changed = await self.engine.sync_owned(owned)
        changed |= await self.engine.apply_queued_commands(worker=self.node_id)
        return changed

    def stats(self) -> dict[str, Any]:
        return {"leader": self.is_leader, "token": self.lease_token}


def _retry_delay(failures: int, delay: float) -> float:
    """The wait before a loop's next pass: after a failed pass, soon (back-off with jitter),
    not at the next catch-up, which on PostgreSQL is half a minute away and would leave
    instances waiting that long after a brief outage."""
    if not failures:
        return delay
    backoff: float = 0.05 * 2.0 ** min(failures, 5) * (0.5 + random.random() / 2)
    return min(delay, backoff)


def _failed(failures: int, what: str, exc: Exception) -> None:
    # one warning per outage, not one per retry; an error that is not tideflow's own is a bug
    # worth its traceback, but it must not stop the loop
    log.log(logging.WARNING if failures == 1 else logging.DEBUG,
            "%s failed (retrying): %s", what, exc,
            exc_info=not isinstance(exc, TideflowError) and failures == 1)


def _recovered(failures: int, what: str) -> int:
    if failures:
        log.info("%s works again after %d failed attempt(s)", what, failures)
    return 0


async def _run(awaitable: Awaitable[None]) -> None:
    await awaitable
