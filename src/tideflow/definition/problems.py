"""Wording shared by every definition problem: where it is, and what the user probably meant.

A problem is one full sentence a person can act on without reading the code, so the pieces that
locate it (the source, the task, the param path) are phrased the same way everywhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Sequence

from ..errors import DefinitionError

#: Past this many problems a definition is so broken that more lines only hide the first ones.
MAX_REPORTED = 50

# Suggestions compare against every candidate; beyond this many the cost outweighs the help.
_MAX_CANDIDATES = 5000

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Integers past this many digits cannot even be turned into text by Python (its default
#: int/str conversion limit), so they could be neither shown in a message nor stored as JSON.
MAX_INT_DIGITS = 4000
# bit_length() is cheap where counting digits is not: 13,288 bits is about 4,000 digits
_MAX_INT_BITS = int(MAX_INT_DIGITS * 3.3219)


def int_too_large(value: object) -> bool:
    """Whether ``value`` is an integer too large to show or store (see :data:`MAX_INT_DIGITS`)."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value.bit_length() > _MAX_INT_BITS
    )


def too_large_number() -> str:
    return f"a number of more than {MAX_INT_DIGITS:,} digits"


def where(source: str | None, dag_id: str | None = None) -> str:
    """The prefix that names what a problem is about: the file or body, else the DAG."""
    if source:
        return source
    if dag_id:
        return f"DAG '{dag_id}'"
    return "the DAG definition"


def task_label(task_id: object, index: int) -> str:
    """``task 'deploy' (tasks[2])``; by index alone when the task has no usable id."""
    if isinstance(task_id, str) and task_id:
        return f"task '{task_id}' (tasks[{index}])"
    return f"tasks[{index}]"


def format_path(parts: Sequence[object], root: str = "params") -> str:
    """``params.cmd[1]``, ``params["content-type"]``: a path a person can find in the file."""
    out = [root]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif isinstance(part, str) and _IDENTIFIER.match(part):
            out.append(f".{part}")
        else:
            out.append(f"[{str(part)!r}]")
    return "".join(out)


def did_you_mean(word: str, choices: Collection[str]) -> str | None:
    """The closest choice to ``word``, if one is close enough to be a likely typo."""
    if not choices or len(choices) > _MAX_CANDIDATES:
        return None

    def squash(s: str) -> str:
        return s.lower().replace("_", "").replace("-", "")

    squashed = squash(word)
    for choice in choices:
        if squash(choice) == squashed:
            return choice
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def suggestion(word: str, choices: Collection[str]) -> str:
    """`` — did you mean 'x'?`` or nothing."""
    match = did_you_mean(word, choices)
    return f" — did you mean '{match}'?" if match else ""


def listing(names: Iterable[str], limit: int = 12) -> str:
    """``a, b, c`` (or ``a, b and 20 more``; ``none`` when empty) for short inline lists."""
    items = list(names)
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        return f"{shown} and {len(items) - limit} more"
    return shown


def short_repr(value: object, limit: int = 60) -> str:
    """``repr`` cut to a length that fits in a sentence."""
    if int_too_large(value):
        return too_large_number()
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not turn a message into a crash
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_kind(value: object) -> str:
    """``a list``, ``a mapping``, ``the text 'x'``...: what was found, for "must be X, found Y"."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {short_repr(value)}"
    if int_too_large(value):
        return too_large_number()
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def definition_error(problems: Sequence[str], *, source: str | None) -> DefinitionError:
    """One DefinitionError holding every problem (capped at :data:`MAX_REPORTED`)."""
    shown = list(problems[:MAX_REPORTED])
    if len(problems) > MAX_REPORTED:
        shown.append(f"... and {len(problems) - MAX_REPORTED} more problems")
    return DefinitionError(shown, source=source)


def raise_problems(problems: Sequence[str], *, source: str | None) -> None:
    """Raise :func:`definition_error` if there are any problems."""
    if problems:
        raise definition_error(problems, source=source)
