"""Chaos run: W1 runs on 3 workers while a random node (the leader included) is killed with
SIGKILL every few seconds and restarted; then the invariants are checked and a table printed.

    python tests/chaos/chaos.py --backend postgresql --runs 1000 --kill-every 3 --max-secs 300

Invariants: every run terminal (and successful), no task missing, a task executed more than
once only where a node that executed it was killed, the leader's fencing token only grows.
Exit status 0 when all hold.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cluster"))
sys.path.insert(0, str(HERE.parents[1] / "bench"))

from bench import FreshDb  # noqa: E402
from harness import Cluster, all_final, leader_of  # noqa: E402

from tideflow import InstanceStatus  # noqa: E402

WORKERS = ("w1", "w2", "w3")


@dataclass
class Report:
    runs: int = 0
    final: int = 0
    succeeded: int = 0
    kills: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    missing_tasks: int = 0
    duplicates: int = 0
    unexplained_duplicates: int = 0
    wall_secs: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def chaos(url: str, tmp: Path, runs: int, kill_every: float, max_secs: float,
                seed: int, submit_secs: float = 20.0) -> Report:
    rng = random.Random(seed)
    report = Report(runs=runs)
    cluster = Cluster(url, tmp, unhealthy_secs=3.0)
    for w in WORKERS:
        cluster.start(w)
    started = time.monotonic()
    killed: set[str] = set()
    try:
        async with cluster.client() as client:
            while await leader_of(client) is None:
                await asyncio.sleep(0.2)
            while True:
                try:
                    await client.get_dag("w1")
                    break
                except Exception:
                    await asyncio.sleep(0.2)
            ids: list[str] = []

            async def submit() -> None:
                # spread the runs out so that kills land while work is in flight
                pause = submit_secs / max(1, runs)
                for _ in range(runs):
                    ids.append((await client.run_dag("w1", {"sleep": "0.05"})).id)
                    await asyncio.sleep(pause)

            submitter = asyncio.get_running_loop().create_task(submit())
            deadline = started + max_secs
            next_kill = time.monotonic() + kill_every
            done = None
            while time.monotonic() < deadline:
                lease = await client.store.get_lease("leader")  # type: ignore[attr-defined]
                if lease is not None:
                    report.tokens.append(lease.token)
                done = await all_final(client, ids) if submitter.done() else None
                if done is not None:
                    break
                if time.monotonic() >= next_kill:
                    victim = rng.choice(WORKERS)
                    leader = await leader_of(client)
                    cluster.kill(victim)
                    killed.add(victim)
                    report.kills.append(victim + (" (leader)" if victim == leader else ""))
                    await asyncio.sleep(0.5)
                    cluster.start(victim)  # the same node id: a restarted pod
                    next_kill = time.monotonic() + kill_every
                await asyncio.sleep(0.25)
            report.wall_secs = time.monotonic() - started
            if done is None:
                report.problems.append(f"not every run was final within {max_secs:.0f}s")
                done = [i for i in await client.list_instances(limit=10_000) if i.id in ids]
            report.final = sum(1 for i in done if i.status.is_final)
            report.succeeded = sum(1 for i in done if i.status == InstanceStatus.SUCCESS)
            if report.succeeded != runs:
                report.problems.append(f"{runs - report.succeeded} run(s) did not succeed")
    finally:
        cluster.stop_all()
    executions = cluster.executions()
    wanted = set(ids)
    count = collections.Counter((i, t) for _, i, t, _ in executions if i in wanted)
    nodes: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for node, i, t, _ in executions:
        nodes[(i, t)].add(node)
    report.missing_tasks = runs * 10 - len(count)
    if report.missing_tasks:
        report.problems.append(f"{report.missing_tasks} task(s) never executed")
    for key, n in count.items():
        if n > 1:
            report.duplicates += n - 1
            if not nodes[key] & killed:
                report.unexplained_duplicates += 1
    if report.unexplained_duplicates:
        report.problems.append(
            f"{report.unexplained_duplicates} task(s) executed twice with no node killed")
    if any(b < a for a, b in zip(report.tokens, report.tokens[1:], strict=False)):
        report.problems.append("the leader's fencing token went down")
    return report


def print_report(backend: str, r: Report) -> None:
    rows = [
        ("backend", backend),
        ("runs submitted", str(r.runs)),
        ("runs final / successful", f"{r.final} / {r.succeeded}"),
        ("node kills", f"{len(r.kills)} ({sum('leader' in k for k in r.kills)} of the leader)"),
        ("tasks missing", str(r.missing_tasks)),
        ("duplicate executions (all on killed nodes)",
         f"{r.duplicates} ({r.unexplained_duplicates} unexplained)"),
        ("fencing tokens seen", f"{min(r.tokens, default=0)} .. {max(r.tokens, default=0)}, "
                                "never decreasing" if "token" not in " ".join(r.problems)
         else "DECREASED"),
        ("wall seconds", f"{r.wall_secs:.1f}"),
        ("verdict", "all invariants hold" if r.ok else "; ".join(r.problems)),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)} | {v}")


async def run(backend: str, runs: int, kill_every: float, max_secs: float, seed: int,
              submit_secs: float) -> Report:
    with tempfile.TemporaryDirectory() as d:
        async with FreshDb(backend, Path(d)) as url:
            return await chaos(url, Path(d), runs, kill_every, max_secs, seed, submit_secs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["postgresql", "mysql"], action="append")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--kill-every", type=float, default=3.0)
    ap.add_argument("--max-secs", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--submit-secs", type=float, default=30.0,
                    help="spread the submissions over this many seconds")
    args = ap.parse_args()
    ok = True
    for backend in args.backend or ["postgresql"]:
        report = asyncio.run(run(backend, args.runs, args.kill_every, args.max_secs, args.seed,
                                 args.submit_secs))
        print_report(backend, report)
        print()
        ok &= report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
