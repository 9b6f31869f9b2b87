"""Task output printed by ``ins logs`` and ``ins show``: control characters escaped, every line
of a text spanning lines prefixed, long lines cut in ``ins show``."""

from __future__ import annotations

import io

from rich.console import Console

from tideflow.cli.logs import format_line
from tideflow.cli.render import instance_report
from tideflow.cli.screen import SHOW_LINE_CHARS

LINE = {"time": "2026-12-04T22:51:02.104410Z", "taskId": "t", "attempt": 1, "stream": "log",
        "level": "INFO", "text": "ok\n2026-12-04T22:51:03.000Z t#1 engine attempt 1 succeeded"
                                 "\x1b[2K\rgone\ttab"}


def test_ins_logs_escapes_control_characters_and_prefixes_every_line() -> None:
    assert format_line(LINE).split("\n") == [
        "2026-12-04T22:51:02.104Z t#1 INFO ok",
        "2026-12-04T22:51:02.104Z t#1 INFO 2026-12-04T22:51:03.000Z t#1 engine attempt 1 "
        "succeeded\\x1b[2K\\rgone\ttab"]


def test_ins_show_escapes_and_cuts_the_last_lines() -> None:
    inst = {"id": "i1", "dagId": "d", "status": "failed", "tasks": [
        {"taskId": "t", "status": "failed", "attempts": 1, "reason": "bad\x1b]0;title\x07",
         "attemptHistory": []}]}
    long = dict(LINE, text="x" * 70_000)
    out = io.StringIO()
    instance_report(Console(file=out, width=400, color_system=None), inst,
                    {"t": [LINE, long]})
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "reason: bad\\x1b]0;title\\x07" in text
    shown = [x for x in text.splitlines() if x.startswith("    ")]
    assert shown[0].endswith(" INFO ok") and shown[1].startswith(shown[0][:-2])
    assert shown[2].endswith("x" * SHOW_LINE_CHARS + f"... ({70_000 - SHOW_LINE_CHARS:,} "
                             "more characters)")
