"""register_builtins puts every built-in action on an engine's registry."""

from __future__ import annotations

import pytest

from tideflow.actions import (
    BUILTIN_NAMES,
    ActionRegistry,
    HttpAction,
    PythonAction,
    WaitAction,
    register_builtins,
)
from tideflow.errors import DefinitionError


async def test_registers_every_builtin_and_the_fastflow_alias() -> None:
    registry = ActionRegistry()
    register_builtins(registry, python_allowed_prefixes=["mypkg"])
    assert registry.names() == BUILTIN_NAMES
    assert isinstance(registry.get("ff-waiting").action, WaitAction)
    assert registry.get("ff-waiting").action is registry.get("wait").action
    python = registry.get("python").action
    assert isinstance(python, PythonAction) and python.allowed_prefixes == ("mypkg",)
    for name in registry.names():
        assert registry.get(name).is_async(registry.get(name).run), name
    http = registry.get("http").action
    assert isinstance(http, HttpAction)
    await http.aclose()


def test_registries_are_independent() -> None:
    first, second = ActionRegistry(), ActionRegistry()
    register_builtins(first)
    register_builtins(second)
    assert first.get("shell").action is not second.get("shell").action


def test_registering_twice_needs_replace() -> None:
    registry = ActionRegistry()
    register_builtins(registry)
    with pytest.raises(DefinitionError, match="already registered"):
        register_builtins(registry)
    register_builtins(registry, python_allowed_prefixes=["other"], replace=True)
    python = registry.get("python").action
    assert isinstance(python, PythonAction) and python.allowed_prefixes == ("other",)


def test_bad_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="not a module path"):
        register_builtins(ActionRegistry(), python_allowed_prefixes=["my-pkg"])
