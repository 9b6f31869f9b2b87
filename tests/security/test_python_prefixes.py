"""``python`` actions call only functions defined under the module prefixes the node allows."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tideflow import Engine, InstanceStatus


@pytest.fixture
def packages(tmp_path: Path) -> Iterator[Path]:
    """``myapp`` (allowed) and look-alikes, each call of a dangerous one touching a marker."""
    marker = tmp_path / "pwned"
    files = {
        "myapp/__init__.py": "",
        "myapp/mod.py": """
            import os, subprocess, importlib, builtins
            from os import system
            from subprocess import run
            evil_eval = builtins.eval

            class Obj:
                pass

            obj = Obj()

            def ok(x: str) -> str:
                return "ok " + x

            def __getattr__(name):
                return os.system
            """,
        "myapp_evil/__init__.py": f"def x():\n    open({str(marker)!r}, 'w').close()\n",
        "myappx/__init__.py": f"def x():\n    open({str(marker)!r}, 'w').close()\n",
    }
    for name, text in files.items():
        path = tmp_path / "pkgs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    sys.path.insert(0, str(tmp_path / "pkgs"))
    yield marker
    sys.path.remove(str(tmp_path / "pkgs"))
    for mod in [m for m in sys.modules if m.split(".")[0] in ("myapp", "myapp_evil", "myappx")]:
        del sys.modules[mod]


REFUSED = [
    ("os:system", {"command": "touch {m}"}),
    ("os.system", {"command": "touch {m}"}),
    ("subprocess:run", {"args": ["touch", "{m}"]}),
    ("builtins:eval", {"source": "open('{m}', 'w')"}),
    ("importlib:import_module", {"name": "os"}),
    ("myapp_evil:x", {}),
    ("myappx:x", {}),
    ("myapp.mod:system", {"command": "touch {m}"}),  # imported into an allowed module
    ("myapp.mod:run", {"args": ["touch", "{m}"]}),
    ("myapp.mod:evil_eval", {"source": "open('{m}', 'w')"}),
    ("myapp.mod:os", {}),
    ("myapp.mod:anything", {"command": "touch {m}"}),  # reached by the module's __getattr__
    ("myapp.mod.obj:__class__", {}),
    ("myapp.mod:__class__", {}),
    ("myapp.mod:__builtins__", {}),
    ("myapp.mod:__loader__", {}),
    ("myapp.__init__:__import__", {"name": "os"}),
    (".mod:ok", {"x": "a"}),
    ("..myapp.mod:ok", {"x": "a"}),
    ("myapp..mod:ok", {"x": "a"}),
    ("myapp.mod:ok.__globals__", {}),
    ("myapp.mod:Obj.__init__.__globals__", {}),
    ("myapp.mod:obj.__class__", {}),
    ("myapp.mod:ok; import os", {}),
    ("myapp", {}),
]


@pytest.mark.parametrize(("func", "kwargs"), REFUSED)
async def test_refused(make_engine: Callable[..., Engine], packages: Path, func: str,
                       kwargs: dict[str, object]) -> None:
    marker = packages
    filled = {k: ([a.format(m=marker) for a in v] if isinstance(v, list)
                  else v.format(m=marker) if isinstance(v, str) else v)
              for k, v in kwargs.items()}
    async with make_engine(python_allowed_prefixes=("myapp",)) as engine:
        await engine.register_dag({"id": "py", "tasks": [
            {"id": "t", "actionName": "python", "params": {"func": func, "kwargs": filled}}]})
        inst = await engine.run_dag("py", wait=30)
    assert inst.status == InstanceStatus.FAILED
    assert not marker.exists()
    reason = inst.tasks[0].reason or ""
    assert any(word in reason for word in (
        "not allowed", "not under an allowed prefix", "is not of the form", "cannot be called",
        "has no function")), reason


async def test_the_allowed_function_runs(make_engine: Callable[..., Engine], packages: Path
                                         ) -> None:
    async with make_engine(python_allowed_prefixes=("myapp",)) as engine:
        await engine.register_dag({"id": "py", "tasks": [
            {"id": "t", "actionName": "python",
             "params": {"func": "myapp.mod:ok", "kwargs": {"x": "{{ 'a' }}"}, "saveAs": "r"}}]})
        inst = await engine.run_dag("py", wait=30)
    assert inst.status == InstanceStatus.SUCCESS, inst.tasks[0].reason
    assert inst.share_data == {"r": "ok a"}


async def test_no_prefix_allows_nothing(make_engine: Callable[..., Engine], packages: Path
                                        ) -> None:
    async with make_engine() as engine:
        await engine.register_dag({"id": "py", "tasks": [
            {"id": "t", "actionName": "python", "params": {"func": "myapp.mod:ok",
                                                           "kwargs": {"x": "a"}}}]})
        inst = await engine.run_dag("py", wait=30)
    assert inst.status == InstanceStatus.FAILED
    assert "none are allowed on this node" in (inst.tasks[0].reason or "")
