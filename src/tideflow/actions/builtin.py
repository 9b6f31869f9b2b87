"""Registration of the built-in actions on one engine's registry."""

from __future__ import annotations

from collections.abc import Sequence

from .approval import ApprovalAction
from .base import ActionRegistry
from .http import HttpAction
from .python import PythonAction
from .shell import ShellAction
from .wait import WaitAction

#: the names :func:`register_builtins` registers
BUILTIN_NAMES = frozenset({"shell", "http", "wait", "ff-waiting", "python", "approval"})


def register_builtins(
    registry: ActionRegistry,
    *,
    python_allowed_prefixes: Sequence[str] = (),
    replace: bool = False,
    skip_existing: bool = False,
) -> None:
    """Register ``shell``, ``http``, ``wait`` (also as Fastflow's ``ff-waiting``), ``python``
    and ``approval`` on ``registry``.

    ``python_allowed_prefixes`` lists the module prefixes the ``python`` action may call; with
    none, it refuses every call. The ``http`` action keeps a connection pool: whoever owns the
    registry closes it with ``await registry.get("http").action.aclose()``.
    """
    wait = WaitAction()
    named: list[tuple[str, object]] = [
        ("shell", ShellAction()),
        ("http", HttpAction()),
        ("wait", wait),
        ("ff-waiting", wait),
        ("python", PythonAction(python_allowed_prefixes)),
        ("approval", ApprovalAction()),
    ]
    for name, action in named:
        if skip_existing and name in registry:
            continue  # an action the user registered under a built-in name wins
        registry.register(action, name=name, replace=replace)
