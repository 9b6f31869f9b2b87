"""The chaos run's checks on hand-made records: each rule passes what it allows and catches
what it forbids (a checker that cannot fail would prove nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from .chaos import faults, invariants

Fault, FaultLog = faults.Fault, faults.FaultLog
Section = invariants.Section


def sec(token: int, acquired: float, leave: float | None, result: str | None,
        node: str = "w1", ttl: float = 2.0) -> invariants.Section:
    return Section("m", token, f"h{token}", node, acquired, acquired + ttl, acquired + 0.001,
                   leave, result, None if result is None else (leave or acquired) + 0.001)


def verdicts(sections: list[invariants.Section], log: faults.FaultLog | None = None
             ) -> list[bool]:
    return [c.ok for c in invariants.check_mutex(sections, log or FaultLog()).checks]


def test_holders_one_after_another_pass() -> None:
    report = invariants.check_mutex(
        [sec(1, 100.0, 100.05, "released"), sec(2, 100.06, 100.1, "released")], FaultLog())
    assert all(c.ok for c in report.checks)
    assert (report.sections, report.past_ttl, report.overlaps) == (2, 0, 0)


def test_handover_before_the_release_fails() -> None:
    # token 2 got the lock while token 1, which released it successfully later, still held it
    ok = verdicts([sec(1, 100.0, 100.5, "released"), sec(2, 100.2, 100.3, "released")])
    assert ok[1] is False  # handed over only after a release or the TTL
    assert ok[3] is False  # the overlap is not explained: the first kept its lease


def test_two_holders_of_one_token_fail() -> None:
    ok = verdicts([sec(3, 100.0, 100.05, "released"), sec(3, 101.0, 101.05, "released")])
    assert ok[0] is False


def test_a_paused_holder_outliving_its_ttl_is_explained_by_the_pause() -> None:
    # token 1 froze inside its section for 5 s; token 2 took the lock after the TTL (2 s)
    pause = Fault("pause", 100.01, 105.0, "w1", past_lease=True)
    sections = [sec(1, 100.0, 105.02, "lost", node="w1"),
                sec(2, 102.1, 102.2, "released", node="w2")]
    report = invariants.check_mutex(sections, FaultLog([pause]))
    assert all(c.ok for c in report.checks), report.checks
    assert (report.past_ttl, report.overlaps) == (1, 1)
    # the same without the pause: a running node held the mutex past its TTL
    assert verdicts(sections)[2] is False


def test_a_pause_of_another_node_explains_nothing() -> None:
    pause = Fault("pause", 100.01, 105.0, "w3", past_lease=True)
    sections = [sec(1, 100.0, 105.02, "lost", node="w1"),
                sec(2, 102.1, 102.2, "released", node="w2")]
    assert verdicts(sections, FaultLog([pause]))[2] is False


def test_a_killed_holder_frees_the_lock_only_at_its_ttl() -> None:
    kill = Fault("kill", 100.02, 100.6, "w1")
    early = [sec(1, 100.0, None, None, node="w1"), sec(2, 100.5, 100.6, "released", "w2")]
    assert verdicts(early, FaultLog([kill]))[1] is False
    late = [sec(1, 100.0, None, None, node="w1"), sec(2, 102.05, 102.1, "released", "w2")]
    assert all(verdicts(late, FaultLog([kill])))


def test_sections_are_read_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "mutex.log"
    base = {"name": "m", "token": 4, "holder": "a", "node": "w2"}
    lines = [{**base, "event": "enter", "enter": 10.1, "acquired": 10.0, "expires": 12.0},
             {**base, "event": "leave", "leave": 10.2},
             {**base, "event": "release", "result": "released", "done": 10.25}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    [s] = invariants.read_sections(path)
    assert (s.token, s.node, s.leave, s.result, s.expires) == (4, "w2", 10.2, "released", 12.0)


def test_duplicates_are_explained_only_by_kills_and_long_pauses_in_between() -> None:
    log = FaultLog([Fault("kill", 1, 2, "w1"), Fault("pause", 3, 4, "w2", past_lease=False),
                    Fault("pause", 5, 9, "w3", past_lease=True)])
    executions = [("w1", "i1", "a", 1, 0.5), ("w2", "i1", "a", 2, 2.5),  # w1 killed between
                  ("w3", "i1", "b", 1, 4.5), ("w2", "i1", "b", 2, 8.0),  # w3 paused past lease
                  ("w2", "i2", "a", 1, 2.9), ("w1", "i2", "a", 2, 4.5),  # w2 paused briefly
                  ("w1", "i3", "a", 1, 3.0), ("w2", "i3", "a", 2, 3.5)]  # w1's kill was before
    out = invariants.check_executions(executions, {"i1", "i2", "i3"}, 2, log, lease_secs=3.0)
    assert (out.duplicates, out.by_kill, out.by_pause) == (4, 1, 1)
    assert [u.split(" ")[0] for u in out.unexplained] == ["i2/a", "i3/a"]
    assert out.missing == 2  # i2/b and i3/b never ran


def test_an_execution_logged_while_the_kill_lands_is_explained_by_it() -> None:
    # the kill's start is read before the signal is sent; the process logged one more
    # execution in the moment the signal took to land, then died with its result
    log = FaultLog([Fault("kill", 2.000, 2.6, "w1")])
    executions = [("w1", "i1", "a", 1, 2.003), ("w1", "i1", "a", 1, 9.0),
                  ("w1", "i2", "a", 1, 2.7), ("w2", "i2", "a", 2, 9.0)]  # after the kill
    out = invariants.check_executions(executions, {"i1", "i2"}, 1, log, lease_secs=3.0)
    assert out.by_kill == 1
    assert [u.split(" ")[0] for u in out.unexplained] == ["i2/a"]


def test_a_node_waking_from_a_long_pause_explains_its_stale_execution() -> None:
    log = FaultLog([Fault("pause", 5, 9, "w3", past_lease=True)])
    # the task moved to w1 during the pause; w3 woke and ran it once more before it noticed
    executions = [("w1", "i1", "a", 2, 8.0), ("w3", "i1", "a", 2, 9.5)]
    out = invariants.check_executions(executions, {"i1"}, 1, log, lease_secs=3.0)
    assert (out.by_pause, out.unexplained) == (1, [])
    late = [("w1", "i1", "a", 2, 8.0), ("w3", "i1", "a", 2, 20.0)]
    assert invariants.check_executions(late, {"i1"}, 1, log, lease_secs=3.0).unexplained


def test_token_samples_must_not_go_down_or_change_hands_in_place() -> None:
    assert invariants.decreases([("a", 1), ("a", 1), ("b", 2), (None, 2), ("c", 3)]) == []
    assert invariants.decreases([("a", 2), ("b", 1)]) == ["2 -> 1"]
    assert invariants.decreases([("a", 2), ("b", 2)]) == ["a -> b with the same token 2"]
