"""Text from tasks made safe to print on a terminal: a task's output, log lines and reasons
are the task's to choose, and printed raw they could drive the terminal or pass for the
command's own lines."""

from __future__ import annotations

import re

# control characters (C0 but tab and newline, DEL, C1): a task's output holding them could move
# the cursor, recolour or rewrite the screen — or forge a line when printed raw
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: a log line shown by ``ins show`` is cut to this many characters
SHOW_LINE_CHARS = 300


def printable(text: str) -> str:
    """``text`` with its control characters (tab and newline aside) written as escapes
    (``\\x1b``, ``\\r``), so printing it cannot drive the terminal."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def log_text_lines(prefix: str, text: str, limit: int | None = None) -> list[str]:
    """The printed lines of a log line's ``text`` (which may span lines: a traceback): each
    starts with ``prefix``, so that no line of a task's text can pass for another line of the
    log; with ``limit``, each is cut to that many characters of text with a marker."""
    out = []
    for part in printable(text).split("\n"):
        if limit is not None and len(part) > limit:
            part = f"{part[:limit]}... ({len(part) - limit:,} more characters)"
        out.append(prefix + part)
    return out
