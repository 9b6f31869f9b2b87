"""Chaos run: W1-shaped runs (1 -> 8 -> 1 no-op tasks) on 3 `tideflow server` workers while
nodes (the leader included) are SIGKILLed and restarted or SIGSTOPped for a while and then
SIGCONTed, and the database server restarts once; afterwards the invariants are checked and a
table printed, one per backend.

    python tests/chaos/chaos.py --backend postgresql --backend mysql --runs 1000

Each backend gets a private database server (its own port and data directory, from
``tests/dbservers.py``), since the run restarts it: PostgreSQL with a fast shutdown and a start
(what ``pg_ctl restart -m fast`` does), MariaDB with SIGKILL and a start (crash recovery).
Pauses are either well within the leader's lease or past it, so a paused leader loses its
lease and must be fenced when it wakes. The last task of each run holds one of a few named
distributed mutexes for a short critical section (see ``invariants.py`` for what is checked
of them).

With ``--keeper etcd`` the nodes keep membership, the leader election and the mutexes in a
private etcd (Debian's etcd-server) rather than the database, and etcd crashes once
(``--etcd-restart-at``) and stays down for longer than the lease; the invariants are the same.

    python tests/chaos/chaos.py --keeper etcd --backend postgresql --backend mysql --runs 1000

Invariants (each a row of the table): every run terminal and successful; no task missing;
a task executed more than once only where a node that executed it was killed or paused past
its lease; the leader's fencing token, and each mutex's, only grows (sampled during the run);
the mutex rules of ``invariants.py``; every node process still alive at the end (none exited
by itself). Exit status 0 when all hold, 1 otherwise. ``--max-secs`` bounds each backend's
run: runs not final by then are a failure, not a hang.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# the script runs without a package: its neighbours are imported by their plain names
for _dir in (HERE, HERE.parent / "cluster", HERE.parent):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

import faults  # noqa: E402
import invariants  # noqa: E402
from faults import FaultLog, Injector, RestartableDb, RestartableEtcd  # noqa: E402
from harness import Cluster, all_final, ready  # noqa: E402
from invariants import (  # noqa: E402
    Check,
    Executions,
    MutexReport,
    check_executions,
    check_mutex,
    decreases,
    read_sections,
)

from dbservers import PrivateEtcd, PrivateMariaDB, PrivatePostgres  # noqa: E402
from tideflow import Engine, InstanceStatus, TideflowError  # noqa: E402

__all__ = ["Plan", "PrivateEtcd", "PrivateMariaDB", "PrivatePostgres", "Report", "chaos",
           "faults", "invariants", "private_server"]

WORKERS = ("w1", "w2", "w3")
#: the leader's lease, and how stale a heartbeat makes a node dead (``--unhealthy-secs``)
LEASE_SECS = 3.0
DAG_ID = "chaos_w1"
TASKS_PER_RUN = 10


def chaos_dag() -> dict[str, Any]:
    """W1's shape (1 -> 8 -> 1 no-op tasks); the last task also holds a named mutex."""
    sleep = {"sleep": "{{sleep}}"}
    tasks: list[dict[str, Any]] = [{"id": "first", "actionName": "noop", "params": sleep}]
    tasks += [{"id": f"m{i}", "actionName": "noop", "dependOn": ["first"], "params": sleep}
              for i in range(8)]
    tasks.append({"id": "last", "actionName": "guarded", "dependOn": [f"m{i}" for i in range(8)],
                  "params": {"mutex": "{{mutex}}", "mutexLog": "{{mutexLog}}",
                             "ttl": "{{ttl}}", "hold": "{{hold}}"}})
    return {"id": DAG_ID, "tasks": tasks, "vars": {
        "sleep": {"defaultValue": "0"}, "mutex": {"defaultValue": ""},
        "mutexLog": {"defaultValue": ""}, "ttl": {"defaultValue": "2"},
        "hold": {"defaultValue": "0.03"}}}


@dataclass
class Plan:
    runs: int = 1000
    #: seconds between two node faults
    fault_every: float = 3.0
    max_secs: float = 300.0
    seed: int = 7
    #: the submissions are spread over this many seconds, so faults land on work in flight
    submit_secs: float = 30.0
    #: seconds after the start at which the database restarts (None: no restart)
    db_restart_at: float | None = 12.0
    mutexes: int = 4
    mutex_ttl: float = 2.0
    mutex_hold: float = 0.03
    #: with the etcd Keeper: seconds after the start at which etcd crashes (None: never),
    #: and how long it stays down (longer than the lease: the leader must step down)
    etcd_restart_at: float | None = 20.0
    etcd_down_secs: float = 4.0


@dataclass
class Report:
    backend: str
    runs: int
    t0: float = 0.0
    final: int = 0
    succeeded: int = 0
    faults: FaultLog = field(default_factory=FaultLog)
    #: (wall time, holder, token) of the leader's lease, sampled through the run
    leader_samples: list[tuple[float, str | None, int]] = field(default_factory=list)
    mutex_samples: dict[str, list[tuple[str | None, int]]] = field(default_factory=dict)
    sample_errors: int = 0
    executions: Executions | None = None
    mutex: MutexReport | None = None
    exited: list[str] = field(default_factory=list)
    #: why runs did not succeed: "task: reason" -> how many
    failures: dict[str, int] = field(default_factory=dict)
    wall_secs: float = 0.0
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]


async def chaos(url: str, tmp: Path, plan: Plan, db: RestartableDb | None,
                backend: str = "", etcd: PrivateEtcd | None = None) -> Report:
    """Run the plan against the database at ``url`` (on the private server ``db``, which is
    restarted once when the plan says so) and check the invariants. With ``etcd``, the
    nodes keep their membership, election and mutexes there, and it crashes once when the
    plan says so."""
    rng = random.Random(plan.seed)
    report = Report(backend=backend + (" + etcd" if etcd else ""), runs=plan.runs)
    keeper = f"{etcd.url}/chaos{secrets.token_hex(3)}" if etcd else None
    cluster = Cluster(url, tmp, unhealthy_secs=LEASE_SECS, keeper=keeper)
    mutex_log = tmp / "mutex.log"
    names = [f"chaos-{i}" for i in range(plan.mutexes)]
    leader: list[str | None] = [None]
    injector = Injector(cluster, LEASE_SECS, lambda: leader[0])
    report.faults = injector.log
    for w in WORKERS:
        cluster.start(w)
    ids: list[str] = []
    try:
        async with cluster.client() as client:
            await ready(client, len(WORKERS), timeout=60)
            await client.register_dag(chaos_dag())
            started = report.t0 = time.time()
            deadline = time.monotonic() + plan.max_secs

            async def submit() -> None:
                pause = plan.submit_secs / max(1, plan.runs)
                for i in range(plan.runs):
                    run_vars = {"sleep": "0.05", "mutex": names[i % len(names)],
                                "mutexLog": str(mutex_log), "ttl": str(plan.mutex_ttl),
                                "hold": str(plan.mutex_hold)}
                    while True:
                        try:
                            # the key makes a retry after a lost answer the same run
                            inst = await client.run_dag(DAG_ID, run_vars,
                                                        idempotency_key=f"chaos-{i}")
                            break
                        except TideflowError:
                            if time.monotonic() > deadline:
                                raise
                            await asyncio.sleep(0.2)
                    ids.append(inst.id)
                    await asyncio.sleep(pause)

            loop = asyncio.get_running_loop()
            submitter = loop.create_task(submit())
            faulter = loop.create_task(_faults(injector, plan, rng))
            restarter = loop.create_task(_restarts(injector, db, etcd, plan))
            done = None
            try:
                while time.monotonic() < deadline:
                    await _sample(client, report, names, leader)
                    if submitter.done():
                        submitter.result()  # a submission that failed for good ends the run
                        with contextlib.suppress(TideflowError):
                            done = await all_final(client, ids)
                        if done is not None and restarter.done():
                            break
                    await asyncio.sleep(0.25)
            finally:
                for t in (faulter, submitter):
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
                with contextlib.suppress(asyncio.CancelledError):
                    await restarter  # a restart under way finishes: the server must be up
                await injector.resume_all()
            report.wall_secs = time.time() - started
            if done is None:
                done = await _listed(client, ids)
            report.final = sum(1 for i in done if i.status.is_final)
            report.succeeded = sum(1 for i in done if i.status == InstanceStatus.SUCCESS)
            report.failures = await _failures(client, [i.id for i in done
                                                       if i.status != InstanceStatus.SUCCESS])
            # a node process that exited by itself (not one we killed: those were restarted)
            report.exited = [f"{n} (exit status {p.returncode})" for n, p in cluster.procs.items()
                             if p.poll() is not None]
    finally:
        cluster.stop_all()
    report.executions = check_executions(cluster.timed_executions(), set(ids), TASKS_PER_RUN,
                                         report.faults, LEASE_SECS)
    report.mutex = check_mutex(read_sections(mutex_log), report.faults)
    report.checks = _checks(report, plan, bool(ids) and len(ids) == plan.runs)
    return report


async def _faults(injector: Injector, plan: Plan, rng: random.Random) -> None:
    """A node fault every ``fault_every`` seconds: a kill, or a pause within the lease or
    past it. The second fault pauses the leader past its lease, so every run, however short,
    sees a deposed leader wake up."""
    i = 0
    while True:
        await asyncio.sleep(plan.fault_every)
        # a paused node is left alone (its pause ends on its own timer), and so is a node
        # still starting after a kill
        busy = injector.paused() | injector.starting()
        running = [w for w in WORKERS if w not in busy]
        if not running:
            continue
        if i == 1:
            leader = injector.leader()
            if leader not in running:
                continue  # the leader is changing hands (or starting): wait for the next
            kind, victim = "pause", leader
        else:
            kind, victim = rng.choice(["kill", "pause"]), rng.choice(running)
        if kind == "kill":
            await injector.kill(victim)
        else:
            long = i == 1 or rng.random() < 0.5
            # short: even with the heartbeat's own delay it stays under the lease; long: well
            # past it, so the node is declared dead and fenced
            scale = rng.uniform(1.5, 2.5) if long else rng.uniform(0.15, 0.45)
            injector.pause(victim, scale * LEASE_SECS)
        i += 1


async def _restarts(injector: Injector, db: RestartableDb | None,
                    etcd: RestartableEtcd | None, plan: Plan) -> None:
    """The database's restart and etcd's, each at its time in the plan."""
    async def db_restart() -> None:
        if db is not None and plan.db_restart_at is not None:
            await asyncio.sleep(plan.db_restart_at)
            await injector.restart_db(db)

    async def etcd_restart() -> None:
        if etcd is not None and plan.etcd_restart_at is not None:
            await asyncio.sleep(plan.etcd_restart_at)
            await injector.restart_etcd(etcd, plan.etcd_down_secs)

    await asyncio.gather(db_restart(), etcd_restart())


async def _sample(client: Engine, report: Report, names: list[str],
                  leader: list[str | None]) -> None:
    """Read the leader's lease and each mutex's; a database (or etcd) that is down is
    skipped. The leader's lease is read from the database either way: with the etcd Keeper
    its row holds the token the leader recorded there, which is what fenced writes compare
    against; the mutexes are read where they live."""
    try:
        lease = await client.store.get_lease("leader")  # type: ignore[attr-defined]
        if lease is not None:
            now = time.time()
            report.leader_samples.append((now, lease.holder, lease.token))
            # the database shares this machine's clock: an expired lease names no leader
            live = lease.holder and lease.expires_at and lease.expires_at.timestamp() > now
            leader[0] = lease.holder.split("/")[0] if live else None
        for name in names:
            assert client.keeper is not None
            m = await client.keeper.get_lease(f"mutex:{name}")
            if m is not None:
                report.mutex_samples.setdefault(name, []).append((m.holder, m.token))
    except TideflowError:
        report.sample_errors += 1


async def _listed(client: Engine, ids: list[str]) -> list[Any]:
    wanted = set(ids)
    for _ in range(20):
        try:
            return [i for i in await client.list_instances(limit=10_000) if i.id in wanted]
        except TideflowError:
            await asyncio.sleep(0.5)
    return []


async def _failures(client: Engine, ids: list[str]) -> dict[str, int]:
    reasons: collections.Counter[str] = collections.Counter()
    for iid in ids[:200]:
        with contextlib.suppress(TideflowError):
            inst = await client.get_instance(iid)
            bad = [f"{t.task_id}: {t.status.value}: {t.reason}" for t in inst.tasks
                   if t.status.value not in ("success", "skipped")]
            reasons[bad[0] if bad else f"instance {inst.status.value}: {inst.reason}"] += 1
    return dict(reasons.most_common())


def _checks(r: Report, plan: Plan, all_submitted: bool) -> list[Check]:
    ex, mx = r.executions, r.mutex
    assert ex is not None and mx is not None
    tokens = [t for _, _, t in r.leader_samples]
    leader_bad = decreases([(h, t) for _, h, t in r.leader_samples])
    mutex_bad = [f"{n}: {b}" for n, s in r.mutex_samples.items() for b in decreases(s)]
    checks = [
        Check("every run terminal and successful",
              all_submitted and r.final == r.runs and r.succeeded == r.runs,
              f"{r.final} final, {r.succeeded} successful of {r.runs}"
              + ("" if all_submitted else " (not all were submitted)")
              + (f"; not final within {plan.max_secs:.0f}s" if r.final < r.runs else "")
              + "".join(f"; {n}x {why[:160]}" for why, n in list(r.failures.items())[:3])),
        Check("no task missing", ex.missing == 0,
              f"{r.runs * TASKS_PER_RUN - ex.missing} of {r.runs * TASKS_PER_RUN} tasks "
              f"executed, {ex.missing} missing"),
        Check("duplicates only from killed or paused-past-lease nodes", not ex.unexplained,
              f"{ex.duplicates} duplicate execution(s): {ex.by_kill} on killed nodes, "
              f"{ex.by_pause} on nodes paused past the lease, {len(ex.unexplained)} unexplained"
              + (f" ({'; '.join(ex.unexplained[:3])})" if ex.unexplained else "")),
        Check("the leader's fencing token only grows", bool(tokens) and not leader_bad,
              f"{len(tokens)} samples, tokens {min(tokens, default=0)}..{max(tokens, default=0)}"
              + (f"; {'; '.join(leader_bad[:3])}" if leader_bad else "")),
        Check("each mutex's token only grows (sampled)", not mutex_bad,
              f"{sum(len(s) for s in r.mutex_samples.values())} samples"
              + (f"; {'; '.join(mutex_bad[:3])}" if mutex_bad else "")),
        *mx.checks,
        Check("every node process alive at the end", not r.exited,
              "none exited by itself" if not r.exited
              else f"exited by itself: {', '.join(r.exited)}"),
    ]
    return checks


def _fault_rows(r: Report) -> list[tuple[str, str, str]]:
    kills, pauses = r.faults.of("kill"), r.faults.of("pause")
    longp = [p for p in pauses if p.past_lease]
    deposed = sum(1 for p in longp if p.leader and _new_leader_during(r, p.start, p.end))
    restarts = r.faults.of("db-restart")
    etcd_restarts = r.faults.of("etcd-restart")
    return [
        ("node kills (SIGKILL, restarted)", "",
         f"{len(kills)} ({sum(k.leader for k in kills)} of the leader)"),
        ("node pauses (SIGSTOP .. SIGCONT)", "",
         f"{len(pauses)} ({sum(p.leader for p in pauses)} of the leader); "
         f"{len(longp)} past the lease, {len(pauses) - len(longp)} within it"),
        ("paused leaders replaced while frozen", "",
         f"{deposed} of {sum(p.leader for p in longp)} paused past the lease"),
        ("database restarts", "",
         ", ".join(f"down {f.secs:.1f}s" for f in restarts) or "none"),
        *([("etcd restarts (SIGKILL, start)", "",
            ", ".join(f"down {f.secs:.1f}s" for f in etcd_restarts))] if etcd_restarts else []),
    ]


def _new_leader_during(r: Report, start: float, end: float) -> bool:
    before = [t for w, _, t in r.leader_samples if w <= start]
    during = [t for w, _, t in r.leader_samples if start < w <= end]
    return bool(before and during) and max(during) > before[-1]


def print_report(r: Report) -> None:
    rows: list[tuple[str, str, str]] = [("backend", "", r.backend),
                                        ("runs submitted", "", str(r.runs))]
    rows += _fault_rows(r)
    if r.mutex is not None:
        rows.append(("mutex critical sections", "",
                     f"{r.mutex.sections} on {r.mutex.names} mutexes, "
                     f"{r.mutex.past_ttl} outlived the TTL, {r.mutex.overlaps} overlapped"))
    rows += [(c.name, "PASS" if c.ok else "FAIL", c.detail) for c in r.checks]
    rows.append(("wall seconds", "", f"{r.wall_secs:.1f}"))
    rows.append(("verdict", "PASS" if r.ok else "FAIL",
                 "all invariants hold" if r.ok else f"{len(r.problems)} invariant(s) failed"))
    w0 = max(len(a) for a, _, _ in rows)
    print(f"{'check'.ljust(w0)} | result | detail")
    print(f"{'-' * w0}-|--------|{'-' * 40}")
    for a, b, c in rows:
        print(f"{a.ljust(w0)} | {b.ljust(6)} | {c}")
    print("faults:")
    for f in r.faults.faults:
        print("  " + f.describe(r.t0))


@contextlib.contextmanager
def private_server(backend: str, tmp: Path) -> Any:
    """A private server for the run, and the database URL on it."""
    server: PrivatePostgres | PrivateMariaDB
    server = PrivatePostgres(tmp) if backend == "postgresql" else PrivateMariaDB(tmp)
    with server:
        yield server, server.create_database(f"tf_chaos_{secrets.token_hex(3)}")


def run(backend: str, plan: Plan, keeper: str | None = None) -> Report:
    with tempfile.TemporaryDirectory() as d, private_server(backend, Path(d)) as (server, url):
        if keeper != "etcd":
            return asyncio.run(chaos(url, Path(d), plan, server, backend))
        with PrivateEtcd(Path(d) / "etcd") as etcd:
            return asyncio.run(chaos(url, Path(d), plan, server, backend, etcd))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--backend", choices=["postgresql", "mysql"], action="append")
    ap.add_argument("--runs", type=int, default=Plan.runs)
    ap.add_argument("--fault-every", type=float, default=Plan.fault_every,
                    help="seconds between two node faults (a kill or a pause)")
    ap.add_argument("--max-secs", type=float, default=Plan.max_secs,
                    help="bound of each backend's run")
    ap.add_argument("--seed", type=int, default=Plan.seed)
    ap.add_argument("--submit-secs", type=float, default=Plan.submit_secs,
                    help="spread the submissions over this many seconds")
    ap.add_argument("--db-restart-at", type=float, default=Plan.db_restart_at,
                    help="seconds after the start at which the database server restarts "
                         "(negative: never)")
    ap.add_argument("--keeper", choices=["sql", "etcd"], default="sql",
                    help="where membership, election and mutexes live: the database, or a "
                         "private etcd (restarted once)")
    ap.add_argument("--etcd-restart-at", type=float, default=Plan.etcd_restart_at,
                    help="with --keeper etcd: seconds after the start at which etcd crashes "
                         "and starts again (negative: never)")
    ap.add_argument("--etcd-down-secs", type=float, default=Plan.etcd_down_secs)
    args = ap.parse_args()
    plan = Plan(runs=args.runs, fault_every=args.fault_every, max_secs=args.max_secs,
                seed=args.seed, submit_secs=args.submit_secs,
                db_restart_at=None if args.db_restart_at < 0 else args.db_restart_at,
                etcd_restart_at=None if args.etcd_restart_at < 0 else args.etcd_restart_at,
                etcd_down_secs=args.etcd_down_secs)
    ok = True
    for backend in args.backend or ["postgresql"]:
        report = run(backend, plan, args.keeper)
        print_report(report)
        print()
        ok &= report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
