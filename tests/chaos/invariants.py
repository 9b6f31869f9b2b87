"""The invariants the chaos run checks afterwards, each one a row of its report.

The mutex invariant, precisely. Some tasks of the run hold a named distributed mutex (TTL
``ttl``, no auto-extend) for a short critical section and log, per section: the token, the
database's acquire time and expiry of the lease (the database's clock), the wall-clock times
on entering and on leaving the section, and what the release found. The database and every
process share one machine and so one clock. For each mutex name, with its holders ordered by
token:

(a) **one holder per token**: no token was handed to two holders (that tokens grow with
    time is sampled from the lease row during the run);
(b) **one holder at a time**: a holder got the lock only after its predecessor gave it up.
    When the predecessor's release succeeded, the release lies between the predecessor leaving
    its section and the next holder entering its own, so the next one entered after the
    predecessor left. When the release found the lock lost, or there was none (killed inside
    the section), the next holder's acquire time is at or past the predecessor's expiry, both
    by the database's clock: the acquiring transaction reads the clock once and takes a lease
    only if it expired by then. (The acquire time is read before the row is updated, so it
    is no bound the other way: a holder may show an acquire time a few milliseconds before
    the release it waited for.) A release that failed with an error may or may not have
    committed, so then either bound will do;
(c) **no mutex held past its TTL by a running node**: a section that went on past its
    lease's expiry (it left after the expiry, or was killed after it) overlaps a pause
    (SIGSTOP) of its own node or the database restart — the holder was frozen or could not
    reach the database, it did not simply keep the lock. A release that arrives after the
    expiry of a section that ended in time is late, not a violation: the lease had simply
    run out, and the next holder waited for that (b);
(d) hence two sections overlap in time only where the earlier one outlived its TTL that way,
    and the later one has the greater token: what a resource fenced by the token needs.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faults import FaultLog

#: the database's microseconds against ``time.time()``: rounding, not skew
EPS = 0.002


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


# -- executions ----------------------------------------------------------------------------------
@dataclass
class Executions:
    missing: int
    duplicates: int
    by_kill: int
    by_pause: int
    unexplained: list[str]


def check_executions(executions: Iterable[tuple[str, str, str, int, float]], wanted: set[str],
                     tasks_per_run: int, faults: FaultLog, lease_secs: float) -> Executions:
    """Every task of every run executed; a task executed again only where the node of the
    execution before it was killed, or paused past its lease, between the two (DESIGN.md §5):
    the earlier execution's result was lost with its node, or its node was declared dead."""
    runs: dict[tuple[str, str], list[tuple[float, str]]] = collections.defaultdict(list)
    for node, iid, tid, _, at in executions:
        if iid in wanted:
            runs[(iid, tid)].append((at, node))
    out = Executions(len(wanted) * tasks_per_run - len(runs), 0, 0, 0, [])
    for key, seq in runs.items():
        seq.sort()
        for (t1, n1), (t2, n2) in zip(seq, seq[1:], strict=False):
            out.duplicates += 1
            cause = faults.lost((n1, t1), (n2, t2), stale_secs=lease_secs)
            if cause == "kill":
                out.by_kill += 1
            elif cause == "pause":
                out.by_pause += 1
            else:
                out.unexplained.append(f"{key[0]}/{key[1]} on {n1} at {t1:.3f}, again at "
                                       f"{t2:.3f}")
    return out


# -- tokens ----------------------------------------------------------------------------------------
def decreases(samples: list[tuple[str | None, int]]) -> list[str]:
    """Where a sampled lease's token went down, or its holder changed and the token did
    not grow (samples are (holder, token) in the order they were read)."""
    bad = []
    for (h1, t1), (h2, t2) in zip(samples, samples[1:], strict=False):
        if t2 < t1:
            bad.append(f"{t1} -> {t2}")
        elif h2 is not None and h1 is not None and h2 != h1 and t2 == t1:
            bad.append(f"{h1} -> {h2} with the same token {t1}")
    return bad


# -- the mutex -------------------------------------------------------------------------------------
@dataclass
class Section:
    name: str
    token: int
    holder: str
    node: str
    acquired: float
    expires: float
    enter: float
    leave: float | None = None
    result: str | None = None  # released | lost | error: ... | None (never released)
    done: float | None = None


def read_sections(path: Path) -> list[Section]:
    sections: dict[tuple[str, int, str], Section] = {}
    if not path.exists():
        return []
    records: list[dict[str, Any]] = [json.loads(line) for line in
                                     path.read_text().splitlines() if line.strip()]
    for r in records:
        if r["event"] == "enter":
            sections[(r["name"], r["token"], r["holder"])] = Section(
                r["name"], r["token"], r["holder"], r["node"], r["acquired"], r["expires"],
                r["enter"])
    for r in records:
        s = sections.get((r["name"], r["token"], r["holder"]))
        if s is None:
            continue
        if r["event"] == "leave":
            s.leave = r["leave"]
        elif r["event"] == "release":
            s.result, s.done = r["result"], r["done"]
    return list(sections.values())


@dataclass
class MutexReport:
    checks: list[Check]
    sections: int
    names: int
    past_ttl: int
    overlaps: int


def check_mutex(sections: list[Section], faults: FaultLog) -> MutexReport:
    by_name: dict[str, list[Section]] = collections.defaultdict(list)
    for s in sections:
        by_name[s.name].append(s)
    order_bad: list[str] = []
    handover_bad: list[str] = []
    ttl_bad: list[str] = []
    overlap_bad: list[str] = []
    past = overlaps = unknown = late = 0
    for name, group in by_name.items():
        group.sort(key=lambda s: (s.token, s.acquired))
        # (a) one holder per token
        for prev, nxt in zip(group, group[1:], strict=False):
            if nxt.token == prev.token:
                order_bad.append(f"{name}: token {nxt.token} held by {prev.holder} and "
                                 f"{nxt.holder}")
        # (b) each hand-over after a release or the TTL
        for prev, nxt in zip(group, group[1:], strict=False):
            why = _early_handover(prev, nxt)
            if why:
                handover_bad.append(f"{name}: token {nxt.token} {why} of token {prev.token} "
                                    f"({prev.result or 'not released'})")
        # (c) past the TTL only when frozen or cut off from the database
        for s in group:
            end = _section_end(s, faults)
            if end is None:
                unknown += 1
                continue
            if s.result == "lost" and end <= s.expires + EPS:
                late += 1
                continue
            if end <= s.expires + EPS:
                continue
            past += 1
            last = max(end, s.done or end)
            if faults.stalled(s.node, s.acquired, last) is None:
                ttl_bad.append(f"{name}: token {s.token} on {s.node} held "
                               f"{last - s.expires:.3f}s past its TTL with no pause or "
                               "database restart")
        # (d) overlapping sections: the earlier outlived its TTL, the later has a greater token
        for i, a in enumerate(group):
            a_end = _section_end(a, faults)
            for b in group[i + 1:]:
                if a_end is None or b.enter >= a_end:
                    continue
                overlaps += 1
                if a_end is not None and a_end <= a.expires + EPS:
                    overlap_bad.append(f"{name}: tokens {a.token} and {b.token} overlap "
                                       "though the first kept its lease")
    tokens = sorted(s.token for s in sections) or [0]
    checks = [
        Check("mutex: one holder per token", not order_bad,
              _detail(order_bad, f"{len(sections)} sections on {len(by_name)} mutexes, "
                                 f"tokens {tokens[0]}..{tokens[-1]}")),
        Check("mutex handed over only after a release or the TTL", not handover_bad,
              _detail(handover_bad, "every hand-over after the predecessor's release, or "
                                    "its expiry by the database's clock")),
        Check("no mutex held past its TTL by a running node", not ttl_bad,
              _detail(ttl_bad, f"{past} section(s) outlived the TTL, each on a paused node or "
                               f"during the database restart; {late} release(s) came after "
                               "the expiry of a section that ended in time")),
        Check("overlapping holders only after a lost lease, next token greater",
              not overlap_bad,
              _detail(overlap_bad, f"{overlaps} overlap(s), all explained"
                                   + (f"; {unknown} section(s) with no known end"
                                      if unknown else ""))),
    ]
    return MutexReport(checks, len(sections), len(by_name), past, overlaps)


def _early_handover(prev: Section, nxt: Section) -> str | None:
    """Why ``nxt`` took the lock before ``prev`` gave it up, or None when it did not."""
    after_release = prev.leave is not None and nxt.enter + EPS >= prev.leave
    after_expiry = nxt.acquired + EPS >= prev.expires
    if prev.result == "released":
        return None if after_release else "entered before the release"
    if prev.result == "lost" or prev.leave is None:
        return None if after_expiry else "acquired before the expiry"
    # a release that failed, or a kill between leaving and recording it: it may have released
    return None if after_release or after_expiry else "took over before the release or expiry"


def _section_end(s: Section, faults: FaultLog) -> float | None:
    """When the holder left its section: its record, else the kill of its node; None when
    neither is known."""
    if s.leave is not None:
        return s.leave
    return faults.first_kill_after(s.node, s.enter)


def _detail(problems: list[str], fine: str) -> str:
    if not problems:
        return fine
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more
