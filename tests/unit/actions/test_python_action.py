"""The python action: allowed prefixes, calling conventions, results."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from action_probe import Probe, make_probe, parse
from pydantic import ValidationError

from tideflow.actions.base import BlockTask
from tideflow.actions.python import PythonAction, PythonParams
from tideflow.errors import ActionError

pytestmark = pytest.mark.usefixtures("targets_on_path")

T = "pyaction_targets"


def params(**raw: Any) -> PythonParams:
    result: PythonParams = parse(PythonAction(), raw)
    return result


@pytest.fixture
def action() -> PythonAction:
    return PythonAction([T])


async def test_calls_a_sync_function_in_a_worker_thread(action: PythonAction, probe: Probe) -> None:
    await action.run(probe.ctx, params(func=f"{T}:thread_name", saveAs="thread"))
    assert probe.share["thread"] != threading.current_thread().name


async def test_kwargs_and_save_as_json(action: PythonAction, probe: Probe) -> None:
    await action.run(probe.ctx, params(func=f"{T}:add", kwargs={"a": 2, "b": 3}, saveAs="sum"))
    assert probe.share["sum"] == "5"
    assert probe.traces == ["returned 5"]


async def test_string_result_is_stored_as_is(action: PythonAction, probe: Probe) -> None:
    await action.run(
        probe.ctx, params(func=f"{T}:greet", kwargs={"name": "ada"}, saveAs="greeting")
    )
    assert probe.share["greeting"] == "hello ada"


async def test_dotted_form_is_accepted(action: PythonAction, probe: Probe) -> None:
    await action.run(probe.ctx, params(func=f"{T}.add", kwargs={"a": 1, "b": 1}, saveAs="r"))
    assert probe.share["r"] == "2"


async def test_async_function_is_awaited(action: PythonAction, probe: Probe) -> None:
    await action.run(
        probe.ctx, params(func=f"{T}:async_mul", kwargs={"a": 6, "b": 7}, saveAs="product")
    )
    assert probe.share["product"] == "42"


async def test_ctx_is_injected(action: PythonAction) -> None:
    probe = make_probe(vars={"region": "eu"}, task_id="task-9")
    await action.run(probe.ctx, params(func=f"{T}:with_ctx", kwargs={"key": "mark"}, saveAs="out"))
    assert probe.share["mark"] == "written by the function"
    assert json.loads(probe.share["out"]) == {"task": "task-9", "vars": {"region": "eu"}}
    assert "inside with_ctx" in probe.traces


async def test_ctx_in_kwargs_is_refused(action: PythonAction, probe: Probe) -> None:
    with pytest.raises(ActionError, match="remove 'ctx' from kwargs"):
        await action.run(probe.ctx, params(func=f"{T}:with_ctx", kwargs={"ctx": 1, "key": "k"}))


async def test_none_result_stores_nothing(action: PythonAction, probe: Probe) -> None:
    await action.run(probe.ctx, params(func=f"{T}:nothing", saveAs="x"))
    assert probe.share == {}
    assert probe.traces == []


async def test_disallowed_module_is_refused_before_import(probe: Probe) -> None:
    action = PythonAction(["somewhere_else", "other.pkg"])
    sys.modules.pop(T, None)
    with pytest.raises(ActionError) as caught:
        await action.run(probe.ctx, params(func=f"{T}:add", kwargs={"a": 1, "b": 2}))
    message = caught.value.message
    assert "allowed: somewhere_else, other.pkg" in message
    assert "python_allowed_prefixes" in message
    assert T not in sys.modules


async def test_no_prefix_refuses_everything(probe: Probe) -> None:
    with pytest.raises(ActionError, match="none are allowed on this node"):
        await PythonAction().run(probe.ctx, params(func="os:getcwd"))


async def test_function_imported_from_elsewhere_is_refused(
    action: PythonAction, probe: Probe
) -> None:
    with pytest.raises(ActionError, match="is defined in module .* not under an allowed prefix"):
        await action.run(probe.ctx, params(func=f"{T}:getcwd"))


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``tfmypkg`` (with a submodule) and ``tfmypkgevil``, importable from a temp dir."""
    (tmp_path / "tfmypkg").mkdir()
    (tmp_path / "tfmypkg" / "__init__.py").write_text("def hello():\n    return 'pkg'\n")
    (tmp_path / "tfmypkg" / "sub.py").write_text("def hello():\n    return 'sub'\n")
    (tmp_path / "tfmypkgevil.py").write_text("def hello():\n    return 'evil'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("tfmypkg", "tfmypkg.sub", "tfmypkgevil"):
        sys.modules.pop(name, None)


@pytest.mark.usefixtures("packages")
@pytest.mark.parametrize(
    ("func", "result"),
    [("tfmypkg:hello", "pkg"), ("tfmypkg.sub:hello", "sub"), ("tfmypkgevil:hello", None)],
)
async def test_prefix_matches_whole_module_names(func: str, result: str | None) -> None:
    probe = make_probe()
    action = PythonAction(["tfmypkg"])
    if result is None:
        with pytest.raises(ActionError, match="is not allowed"):
            await action.run(probe.ctx, params(func=func, saveAs="r"))
        assert "tfmypkgevil" not in sys.modules
    else:
        await action.run(probe.ctx, params(func=func, saveAs="r"))
        assert probe.share["r"] == result


async def test_missing_module_names_it(probe: Probe) -> None:
    action = PythonAction(["tf_missing"])
    with pytest.raises(ActionError, match="cannot import module 'tf_missing.mod'"):
        await action.run(probe.ctx, params(func="tf_missing.mod:fn"))


@pytest.mark.parametrize("name", ["no_such_function", "NOT_CALLABLE"])
async def test_missing_function(action: PythonAction, probe: Probe, name: str) -> None:
    with pytest.raises(ActionError, match=f"has no function '{name}'"):
        await action.run(probe.ctx, params(func=f"{T}:{name}"))


async def test_bad_kwargs(action: PythonAction, probe: Probe) -> None:
    with pytest.raises(ActionError, match="kwargs do not fit"):
        await action.run(probe.ctx, params(func=f"{T}:add", kwargs={"a": 1, "c": 2}))


async def test_exception_becomes_the_reason(action: PythonAction, probe: Probe) -> None:
    with pytest.raises(ActionError, match=f"{T}:boom raised RuntimeError: kaboom"):
        await action.run(probe.ctx, params(func=f"{T}:boom"))


async def test_block_from_a_function_passes_through(action: PythonAction, probe: Probe) -> None:
    with pytest.raises(BlockTask, match="needs a second look"):
        await action.run(probe.ctx, params(func=f"{T}:blocks"))


async def test_unserialisable_result(action: PythonAction, probe: Probe) -> None:
    with pytest.raises(ActionError, match="cannot store the result"):
        await action.run(probe.ctx, params(func=f"{T}:unserialisable", saveAs="x"))


@pytest.mark.parametrize("func", ["add", "pkg:", ":fn", "pkg:a.b", "pkg mod:fn", "1pkg:fn"])
def test_func_form_is_checked(func: str) -> None:
    with pytest.raises(ValidationError, match="package.module:function"):
        params(func=func)


def test_bad_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="not a module path"):
        PythonAction(["ok", "bad prefix"])
