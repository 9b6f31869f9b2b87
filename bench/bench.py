"""tideflow benchmark: the workloads of docs/performance.md on one node.

    python bench/bench.py                        # quick size, SQLite
    python bench/bench.py --size full --backend sqlite --backend postgresql --backend mysql

W1  200 runs of 1 -> 8 -> 1 no-op tasks, submitted at once: runs/s and tasks/s
W2  a chain of 20 no-op tasks, one run at a time: ms per step, p50 / p99
W3  one DAG with 1,000 parallel 1-second waits: wall seconds
W4  one task depending on 10,000 no-op tasks: wall seconds
idle      database queries per second of an idle node: a cluster worker that is the leader,
          and a single node (statements counted by the driver; on PostgreSQL also
          transactions from pg_stat_database)
scaleout  (with --workload scaleout; MySQL/PostgreSQL) W1 on 1 and on 3 `tideflow server`
          worker processes (runs submitted at once by a watcher): tasks/s of each and their
          ratio, and on PostgreSQL the database's cost per task (commits, rows written,
          WAL bytes) from pg_stat_database and the WAL position
failover  (with --workload failover; MySQL/PostgreSQL) 3 worker processes, the leader
          SIGKILLed: seconds until the new leader dispatches a run submitted right after;
          with --keeper etcd://host:port (or `etcd`: a private etcd started here) the nodes
          keep membership and the election in etcd; --lease-secs sets the leader's lease

--task-logs off|on (repeatable, to compare: the modes take turns within each repeat): task
logs kept (the default) or not (EngineSettings(task_logs=False)); --log-lines N: each no-op
task of W1 and W2 also writes N lines with ctx.log (docs/logs.md).

Each workload runs on a fresh database; the table shows the median of the repeats with the
min and max, and the results are also written as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tideflow import ActionContext, ActionRegistry, Engine, EngineSettings, InstanceStatus

SIZES: dict[str, dict[str, int]] = {
    "quick": {"w1_runs": 40, "w2_runs": 5, "w3_tasks": 200, "w4_parents": 1000, "repeats": 1,
              "idle_secs": 5, "scale_runs": 100},
    "full": {"w1_runs": 200, "w2_runs": 20, "w3_tasks": 1000, "w4_parents": 10000, "repeats": 3,
             "idle_secs": 20, "scale_runs": 600},
}

MYSQL = "mysql://root@127.0.0.1:3306"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


# -- databases ---------------------------------------------------------------------------------
class FreshDb:
    """A new, empty database per workload run, dropped afterwards."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.tmp = tmp
        self.name = f"tf_bench_{secrets.token_hex(4)}"

    async def __aenter__(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp / (self.name + '.db')}"
        if self.backend == "postgresql":
            import asyncpg

            conn = await asyncpg.connect(POSTGRES + "/postgres")
            await conn.execute(f'CREATE DATABASE "{self.name}"')
            await conn.close()
            return f"{POSTGRES}/{self.name}"
        import asyncmy  # type: ignore[import-untyped]

        conn = await asyncmy.connect(host="127.0.0.1", user="root", password="", autocommit=True)
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE DATABASE `{self.name}`")
        conn.close()
        return f"{MYSQL}/{self.name}"

    async def __aexit__(self, *exc: object) -> None:
        if self.backend == "postgresql":
            import asyncpg

            conn = await asyncpg.connect(POSTGRES + "/postgres")
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            await conn.close()
        elif self.backend == "mysql":
            import asyncmy

            conn = await asyncmy.connect(host="127.0.0.1", user="root", password="",
                                         autocommit=True)
            async with conn.cursor() as cur:
                await cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            conn.close()


async def _pg_stat(name: str, column: str) -> int:
    """A counter of ``pg_stat_database`` for database ``name`` (an expression over its
    columns)."""
    import asyncpg

    conn = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        value = await conn.fetchval(
            f"SELECT {column} FROM pg_stat_database WHERE datname = $1", name)
        return int(value or 0)
    finally:
        await conn.close()


async def pg_xacts(name: str) -> int:
    """Transactions (committed and rolled back) of database ``name`` so far."""
    return await _pg_stat(name, "xact_commit + xact_rollback")


async def pg_commits(name: str) -> int:
    return await _pg_stat(name, "xact_commit")


# -- workloads ---------------------------------------------------------------------------------
def registry(stamps: list[float] | None = None, lines: int = 0) -> ActionRegistry:
    reg = ActionRegistry()

    async def noop(ctx: ActionContext, params: Any) -> None:
        if stamps is not None:
            stamps.append(time.perf_counter())
        for i in range(lines):
            ctx.log.info("step %d of %d: working on %s", i + 1, lines, ctx.task_id)

    reg.add_function("noop", noop)
    return reg


def engine_for(url: str, reg: ActionRegistry, size: dict[str, int] | None = None) -> Engine:
    logs = bool((size or {}).get("task_logs", 1))
    return Engine.from_url(url, actions=reg, settings=EngineSettings(node_id="bench",
                                                                     task_logs=logs))


def _t(tid: str, deps: list[str] | None = None, action: str = "noop",
       **extra: Any) -> dict[str, Any]:
    return {"id": tid, "actionName": action, "dependOn": deps or [], **extra}


async def w1(url: str, size: dict[str, int]) -> dict[str, float]:
    runs = size["w1_runs"]
    mids = [f"m{i}" for i in range(8)]
    pg = url.startswith("postgresql")
    async with engine_for(url, registry()) as eng:
        await eng.register_dag({"id": "w1", "tasks": [
            _t("first"), *[_t(m, ["first"]) for m in mids], _t("last", mids)]})
    # the database's count starts after the set-up (migrations, the DAG), whose server
    # processes reported their statistics when their connections closed
    name = url.rsplit("/", 1)[1]
    before = await pg_commits(name) if pg else 0
    async with engine_for(url, registry(lines=size.get("log_lines", 0)), size) as eng:
        start = time.perf_counter()
        cpu = time.process_time()
        insts = await asyncio.gather(*[eng.run_dag("w1") for _ in range(runs)])
        done = await asyncio.gather(*[eng.wait_for(i.id, settled=False) for i in insts])
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        assert all(d.status == InstanceStatus.SUCCESS for d in done)
        stats = eng.stats
    tasks = runs * 10
    # CPU time of this process per task: what the engine itself costs, which a busy machine
    # blurs less than the wall clock
    out = {"runs_per_s": runs / wall, "tasks_per_s": tasks / wall, "wall_s": wall,
           "flushes_per_task": stats["flushes"] / tasks, "cpu_us_per_task": cpu / tasks * 1e6}
    if pg:
        await asyncio.sleep(0.3)
        # every transaction of the second engine, its start and close included
        out["commits_per_task"] = (await pg_commits(name) - before) / tasks
    return out


async def w2(url: str, size: dict[str, int]) -> dict[str, float]:
    stamps: list[float] = []
    steps: list[float] = []
    async with engine_for(url, registry(stamps, lines=size.get("log_lines", 0)), size) as eng:
        chain = [_t("s0")] + [_t(f"s{i}", [f"s{i - 1}"]) for i in range(1, 20)]
        await eng.register_dag({"id": "w2", "tasks": chain})
        cpu = time.process_time()
        for _ in range(size["w2_runs"]):
            stamps.clear()
            inst = await eng.run_dag("w2")
            await eng.wait_for(inst.id, settled=False)
            steps.extend((b - a) * 1000 for a, b in zip(stamps, stamps[1:], strict=False))
        cpu = time.process_time() - cpu
    steps.sort()
    return {"p50_ms": statistics.median(steps),
            "p99_ms": steps[min(len(steps) - 1, int(len(steps) * 0.99))],
            "cpu_us_per_task": cpu / (size["w2_runs"] * 20) * 1e6}


async def w3(url: str, size: dict[str, int]) -> dict[str, float]:
    n = size["w3_tasks"]
    async with engine_for(url, registry()) as eng:
        await eng.register_dag({"id": "w3", "tasks": [
            _t(f"w{i}", action="wait", params={"waitingTime": "1s"}) for i in range(n)]})
        start = time.perf_counter()
        inst = await eng.run_dag("w3")
        done = await eng.wait_for(inst.id, settled=False)
        wall = time.perf_counter() - start
        assert done.status == InstanceStatus.SUCCESS, done.reason
    return {"wall_s": wall}


async def w4(url: str, size: dict[str, int]) -> dict[str, float]:
    n = size["w4_parents"]
    async with engine_for(url, registry()) as eng:
        parents = [_t(f"p{i}") for i in range(n)]
        await eng.register_dag({"id": "w4", "tasks": [
            *parents, _t("sink", [p["id"] for p in parents])]})
        start = time.perf_counter()
        inst = await eng.run_dag("w4")
        done = await eng.wait_for(inst.id, settled=False)
        wall = time.perf_counter() - start
        assert done.status == InstanceStatus.SUCCESS, done.reason
    return {"wall_s": wall}


async def _idle_rate(eng: Engine, url: str, secs: float) -> tuple[float, float]:
    """Statements and (PostgreSQL) transactions per second of ``eng`` left alone."""
    from sqlalchemy import event

    statements = [0]

    def count(*args: Any) -> None:
        statements[0] += 1

    sync_engine = eng.store.engine.sync_engine  # type: ignore[attr-defined]
    event.listen(sync_engine, "before_cursor_execute", count)
    # SQLite's change check (PRAGMA data_version) runs on the store's own sqlite3
    # connection, outside SQLAlchemy: count it too
    direct = getattr(eng.store, "_direct", None)
    if direct is not None:
        original = direct.data_version

        async def counted() -> int:
            count()
            return int(await original())

        direct.data_version = counted
    pg = url.startswith("postgresql")
    name = url.rsplit("/", 1)[1]
    await asyncio.sleep(3.0)  # settle: start-up reads, the first beats, the leader's first look
    s0, x0 = statements[0], await pg_xacts(name) if pg else 0
    await asyncio.sleep(secs)
    s1, x1 = statements[0], await pg_xacts(name) if pg else 0
    event.remove(sync_engine, "before_cursor_execute", count)
    return (s1 - s0) / secs, ((x1 - x0) / secs if pg else float("nan"))


async def idle(url: str, size: dict[str, int]) -> dict[str, float]:
    from tideflow.cluster.node import ClusterSettings

    secs = size["idle_secs"]
    out: dict[str, float] = {}
    if not url.startswith("sqlite"):
        settings = EngineSettings(node_id="idle-leader", cluster=ClusterSettings())
        async with Engine.from_url(url, actions=registry(), settings=settings) as eng:
            while not eng.is_leader:
                await asyncio.sleep(0.05)
            out["leader_qps"], out["leader_xps"] = await _idle_rate(eng, url, secs)
    settings = EngineSettings(node_id="idle-single")
    async with Engine.from_url(url, actions=registry(), settings=settings) as eng:
        out["single_qps"], out["single_xps"] = await _idle_rate(eng, url, secs)
    return {k: v for k, v in out.items() if v == v}  # drop the NaNs


def _server_cpu_secs(backend_pid: int) -> float:
    """CPU seconds used so far by the processes of the (local) PostgreSQL server that
    ``backend_pid`` belongs to: its postmaster's children; NaN when it is not local."""
    import os

    def stat(pid: int | str) -> list[str]:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    try:
        postmaster = int(stat(backend_pid)[1])
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    fields = stat(entry)
                except OSError:
                    continue
                if int(fields[1]) == postmaster:
                    total += (int(fields[11]) + int(fields[12])) / tick
        return total
    except OSError:
        return float("nan")


async def _pg_cost(name: str) -> tuple[int, int, int, float]:
    """Commits, rows written, the WAL position (bytes) of database ``name``, and the CPU
    seconds the server has used (NaN when it is not on this machine)."""
    import asyncpg

    conn = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS rows, "
            "pg_current_wal_lsn() - '0/0'::pg_lsn AS wal, pg_backend_pid() AS pid "
            "FROM pg_stat_database WHERE datname = $1", name)
        return (int(row["xact_commit"]), int(row["rows"]), int(row["wal"]),
                _server_cpu_secs(int(row["pid"])))
    finally:
        await conn.close()


async def _w1_on_workers(url: str, workers: int, runs: int, tmp: Path) -> dict[str, float]:
    """W1 on ``workers`` server processes; the runs are submitted at once by a watcher."""
    import subprocess

    from tideflow.cluster.node import ClusterSettings

    here = Path(__file__).resolve().parent
    env = {**__import__("os").environ, "PYTHONPATH": str(here)}
    procs = []
    for i in range(workers):
        out = open(tmp / f"worker{i}.log", "ab")  # noqa: SIM115 - closed with the process
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "tideflow.cli.main", "server", "--role", "worker",
             "--db", url, "--node-id", f"w{i}", "--actions", "bench_actions"],
            env=env, stdout=out, stderr=subprocess.STDOUT), out))
    client = Engine.from_url(url, settings=EngineSettings(
        node_id="bench-client", cluster=ClusterSettings(role="watcher")))
    try:
        async with client:
            while sum(1 for n in await client.list_nodes()
                      if n.alive and n.role == "worker") < workers:
                await asyncio.sleep(0.1)
            mids = [f"m{i}" for i in range(8)]
            await client.register_dag({"id": "w1", "tasks": [
                _t("first"), *[_t(m, ["first"]) for m in mids], _t("last", mids)]})
            warm = await client.run_dag("w1")
            await client.wait_for(warm.id, timeout=60, settled=False)
            pg = url.startswith("postgresql")
            name = url.rsplit("/", 1)[1]
            before = await _pg_cost(name) if pg else (0, 0, 0, 0.0)
            start = time.perf_counter()
            insts = await asyncio.gather(*[client.run_dag("w1") for _ in range(runs)])
            assert len(insts) == runs
            count = sa.text("SELECT count(*) FROM tf_dag_instances "
                            "WHERE dag_id = 'w1' AND status = 'success'")
            engine = client.store.engine  # type: ignore[attr-defined]
            while True:  # one cheap count a poll: watching must not load the database
                await asyncio.sleep(0.02)
                async with engine.connect() as conn:
                    if (await conn.execute(count)).scalar_one() >= runs + 1:
                        break
            wall = time.perf_counter() - start
            cpu_done = await _pg_cost(name) if pg else (0, 0, 0, 0.0)
    finally:
        for proc, _log in procs:
            proc.terminate()
        for proc, log in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    tasks = runs * 10
    out = {"tasks_per_s": tasks / wall, "wall_s": wall}
    if pg:
        out["db_cpu_us_per_task"] = (cpu_done[3] - before[3]) / tasks * 1e6
        # a server process reports its statistics when it ends at the latest: read them
        # once the nodes are gone (their leaving adds a few rows, not per task)
        await asyncio.sleep(0.5)
        after = await _pg_cost(name)
        out["commits_per_task"] = (after[0] - before[0]) / tasks
        out["rows_per_task"] = (after[1] - before[1]) / tasks
        out["wal_bytes_per_task"] = (after[2] - before[2]) / tasks
    return out


async def scaleout(url: str, size: dict[str, int]) -> dict[str, float]:
    """W1 on one worker process, then on three, each on a fresh database."""
    backend = url.split(":", 1)[0]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 3):
            async with FreshDb(backend, Path(tmp)) as fresh:
                res = await _w1_on_workers(fresh, n, size["scale_runs"], Path(tmp))
            out.update({f"{k}_{n}": v for k, v in res.items()})
    out["ratio"] = out["tasks_per_s_3"] / out["tasks_per_s_1"]
    return out


async def failover(url: str, size: dict[str, int], *, keeper: str | None = None,
                   lease_secs: float | None = None) -> dict[str, float]:
    """3 worker processes; SIGKILL the leader, submit a run at once: seconds until the new
    leader has dispatched it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "cluster"))
    from harness import Cluster, leader_of

    with tempfile.TemporaryDirectory() as tmp:
        # the server's defaults: unhealthy 5 s, lease 3 s, a beat every 1.5 s (or half the
        # lease, when --lease-secs is shorter)
        timings = ["--heartbeat-secs", "1.5"]
        if lease_secs:
            timings = ["--lease-secs", str(lease_secs),
                       "--heartbeat-secs", str(min(1.5, lease_secs / 2))]
        # each sample on keys of its own
        on = f"{keeper}/bench{secrets.token_hex(4)}" if keeper else None
        cluster = Cluster(url, Path(tmp), unhealthy_secs=5.0, keeper=on)
        for w in ("w1", "w2", "w3"):
            cluster.start(w, "worker", *timings)
        try:
            async with cluster.client() as client:
                while await leader_of(client) is None:
                    await asyncio.sleep(0.1)
                while True:
                    try:
                        await client.get_dag("w1")
                        break
                    except Exception:
                        await asyncio.sleep(0.1)
                warm = await client.run_dag("w1")
                await client.wait_for(warm.id, timeout=30, settled=False)
                leader = await leader_of(client)
                assert leader is not None
                killed = time.perf_counter()
                cluster.kill(leader)
                inst = await client.run_dag("w1")
                while (await client.get_instance(inst.id)).worker is None:
                    await asyncio.sleep(0.02)
                return {"wall_s": time.perf_counter() - killed}
        finally:
            cluster.stop_all()
            if on is not None:
                await _forget_keys(on)


async def _forget_keys(keeper: str) -> None:
    """Delete the sample's keys (the killed leader's record stays otherwise): the run leaves
    nothing behind in an etcd of the user's."""
    import aetcd

    from tideflow.cluster.etcd import EtcdUrl

    url = EtcdUrl.parse(keeper)
    host, port = url.endpoints[0]
    async with aetcd.Client(host=host, port=port) as etcd:
        await etcd.delete_prefix(f"/{url.path}/".encode())


WORKLOADS: dict[str, Callable[[str, dict[str, int]], Awaitable[dict[str, float]]]] = {
    "W1": w1, "W2": w2, "W3": w3, "W4": w4, "idle": idle, "scaleout": scaleout,
    "failover": failover,
}


Workload = Callable[[str, dict[str, int]], Awaitable[dict[str, float]]]


async def measure(backend: str, workload: Workload, size: dict[str, int], tmp: Path
                  ) -> dict[str, float]:
    db = FreshDb(backend, tmp)
    async with db as url:
        return await workload(url, size)


def summarise(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key in samples[0]:
        vals = [s[key] for s in samples]
        out[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    return out


def fmt(stat: dict[str, float]) -> str:
    m, lo, hi = stat["median"], stat["min"], stat["max"]
    digits = 0 if m >= 100 else (2 if m < 10 else 1)
    if lo == hi:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


@contextlib.contextmanager
def _keeper(arg: str | None, tmp: Path) -> Iterator[str | None]:
    """The etcd URL for --keeper: as given, or a private etcd's started for the run."""
    if arg != "etcd":
        yield arg
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from dbservers import PrivateEtcd

    with PrivateEtcd(tmp / "etcd") as etcd:
        yield etcd.url


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="quick")
    ap.add_argument("--backend", action="append", choices=["sqlite", "postgresql", "mysql"])
    ap.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--json", type=Path, default=Path("bench/results/latest.json"))
    ap.add_argument("--task-logs", choices=["off", "on"], action="append",
                    help="task logs kept (on, the default) or not; repeat it to compare: the "
                    "modes take turns within each repeat")
    ap.add_argument("--log-lines", type=int, default=0,
                    help="lines each no-op task of W1 and W2 writes with ctx.log")
    ap.add_argument("--keeper", help="failover: etcd://host:port, or etcd to start a private "
                    "etcd (Debian's etcd-server) for the run")
    ap.add_argument("--lease-secs", type=float, help="failover: the leader's lease")
    args = ap.parse_args()
    size = dict(SIZES[args.size])
    modes = args.task_logs or ["on"]
    if args.repeats:
        size["repeats"] = args.repeats
    backends = args.backend or ["sqlite"]
    workloads = args.workload or [w for w in WORKLOADS if w not in ("failover", "scaleout")]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmpdir, _keeper(args.keeper, Path(tmpdir)) as keeper:
        chosen: dict[str, Workload] = dict(WORKLOADS)
        if keeper or args.lease_secs:
            chosen["failover"] = functools.partial(failover, keeper=keeper,
                                                   lease_secs=args.lease_secs)
        for backend in backends:
            for name in workloads:
                samples: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
                for _ in range(size["repeats"]):
                    for mode in modes:  # in turns: a busy spell of the machine hits each
                        sized = {**size, "task_logs": int(mode != "off"),
                                 "log_lines": args.log_lines}
                        samples[mode].append(
                            asyncio.run(measure(backend, chosen[name], sized, Path(tmpdir))))
                for mode in modes:
                    label = backend if modes == ["on"] else f"{backend} logs {mode}"
                    results.setdefault(label, {})[name] = summarise(samples[mode])
                    print(f"  {label} {name}: {samples[mode]}", file=sys.stderr)
    lines = f", {args.log_lines} ctx.log lines per task" if args.log_lines else ""
    print(f"\ntideflow bench, size {args.size}{lines} ({size['repeats']} run(s) each; "
          "median (min–max))\n")
    header = ["backend", "W1 tasks/s", "W1 runs/s", "W2 p50 ms", "W2 p99 ms", "W3 wall s",
              "W4 wall s", "W1 commits/task", "idle leader q/s", "idle single q/s",
              "failover s", "W1 CPU µs/task", "W2 CPU µs/task"]
    rows = []
    for backend, res in results.items():
        def cell(w: str, k: str, res: dict[str, Any] = res) -> str:
            return fmt(res[w][k]) if w in res and k in res[w] else "-"
        rows.append([backend, cell("W1", "tasks_per_s"), cell("W1", "runs_per_s"),
                     cell("W2", "p50_ms"), cell("W2", "p99_ms"), cell("W3", "wall_s"),
                     cell("W4", "wall_s"), cell("W1", "commits_per_task"),
                     cell("idle", "leader_qps"), cell("idle", "single_qps"),
                     cell("failover", "wall_s"), cell("W1", "cpu_us_per_task"),
                     cell("W2", "cpu_us_per_task")])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"size": args.size, "params": size, "results": results},
                                    indent=2))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
