"""What the CLI commands share: exit codes, error printing, building an engine, loading
action modules."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console

from ..actions.base import ActionRegistry
from ..engine.engine import Engine
from ..engine.settings import EngineSettings
from ..errors import DefinitionError, InputError, TideflowError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BLOCKED = 3

DEFAULT_DB = "sqlite:///tideflow.db"

err_console = Console(stderr=True)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn tideflow's errors into a message on stderr and the documented exit code."""
    try:
        yield
    except (DefinitionError, InputError) as exc:
        fail(exc.message, EXIT_BAD_INPUT)
    except TideflowError as exc:
        fail(exc.message, EXIT_FAILED)


def load_action_modules(modules: Sequence[str], registry: ActionRegistry) -> None:
    """Import each module and register its actions: a ``register_actions(registry)``
    function, or an ``ACTIONS`` list of action objects."""
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the working directory import
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # any import failure is the user's module: report it
            raise InputError(f"--actions {name}: cannot import it: {exc}") from exc
        register = getattr(module, "register_actions", None)
        actions = getattr(module, "ACTIONS", None)
        if callable(register):
            register(registry)
        elif actions is not None:
            for action in actions:
                registry.register(action)
        else:
            raise InputError(
                f"--actions {name}: the module has neither a register_actions(registry) "
                "function nor an ACTIONS list"
            )


def build_engine(
    db: str,
    *,
    actions: Sequence[str] = (),
    python_allow: Sequence[str] = (),
    recover: bool = False,
    concurrency: int = 1000,
    **settings_kwargs: Any,
) -> Engine:
    registry = ActionRegistry()
    load_action_modules(actions, registry)
    settings = EngineSettings(
        recover=recover,
        python_allowed_prefixes=tuple(python_allow),
        concurrency=concurrency,
        **settings_kwargs,
    )
    return Engine.from_url(db, actions=registry, settings=settings)
