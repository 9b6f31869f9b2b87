"""The ``shell`` action never lets a var's value become shell code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tideflow import Engine, InstanceStatus

# prints its arguments as JSON: what the process really received
ECHO_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


def _hostile(marker: Path) -> list[str]:
    return [
        f"; touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"x && touch {marker}",
        f"x\ntouch {marker}",
        f"x | touch {marker}",
        f"'; touch {marker}; echo '",
        f'"; touch {marker}; echo "',
        "*",
        "$HOME ${PATH} $((1+1))",
        "-c",
    ]


def _dag(dag_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"id": dag_id, "vars": {"v": {"defaultValue": "x"}},
            "tasks": [{"id": "t", "actionName": "shell", "params": params}]}


@pytest.mark.parametrize("index", range(len(_hostile(Path("/m")))))
async def test_a_var_in_argv_stays_one_literal_argument(
    make_engine: Callable[..., Engine], tmp_path: Path, index: int
) -> None:
    marker = tmp_path / "pwned"
    value = _hostile(marker)[index]
    async with make_engine() as engine:
        await engine.register_dag(_dag("argv", {
            "cmd": [sys.executable, "-c", ECHO_ARGV, "{{v}}", "pre-{{ vars.v }}-post"],
            "saveAs": "argv", "cwd": str(tmp_path),
        }))
        inst = await engine.run_dag("argv", {"v": value}, wait=30)
    assert inst.status == InstanceStatus.SUCCESS, inst.tasks[0].reason
    assert json.loads(inst.share_data["argv"]) == [value, f"pre-{value}-post"]
    assert not marker.exists()
    # a glob was not expanded either: the directory has files it could have matched
    assert inst.tasks[0].params["cmd"][3] == value


@pytest.mark.parametrize("index", range(len(_hostile(Path("/m")))))
async def test_a_var_in_a_shell_script_is_quoted(
    make_engine: Callable[..., Engine], tmp_path: Path, index: int
) -> None:
    marker = tmp_path / "pwned"
    value = _hostile(marker)[index]
    (tmp_path / "some-file").write_text("a glob would list me")
    async with make_engine() as engine:
        await engine.register_dag(_dag("script", {
            "shell": True, "cmd": "printf '%s|' {{v}} {{ vars.v }}; echo",
            "saveAs": "out", "cwd": str(tmp_path),
        }))
        inst = await engine.run_dag("script", {"v": value}, wait=30)
    assert inst.status == InstanceStatus.SUCCESS, inst.tasks[0].reason
    assert inst.share_data["out"] == f"{value}|{value}|".strip()
    assert not marker.exists()


async def test_shell_true_from_a_template_still_quotes(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    """``shell`` itself rendered from a var cannot turn quoting off."""
    marker = tmp_path / "pwned"
    async with make_engine() as engine:
        await engine.register_dag({
            "id": "flag", "vars": {"v": {"defaultValue": "x"}, "sh": {"defaultValue": "true"}},
            "tasks": [{"id": "t", "actionName": "shell", "params": {
                "shell": "{{sh}}", "cmd": "echo {{v}}", "saveAs": "out"}}],
        })
        inst = await engine.run_dag("flag", {"v": f"; touch {marker}"}, wait=30)
    assert inst.status == InstanceStatus.SUCCESS, inst.tasks[0].reason
    assert inst.share_data["out"] == f"; touch {marker}"
    assert not marker.exists()


async def test_a_string_cmd_without_shell_true_is_refused(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    async with make_engine() as engine:
        await engine.register_dag(_dag("nosh", {"cmd": f"touch {marker}"}))
        inst = await engine.run_dag("nosh", wait=30)
    assert inst.status == InstanceStatus.FAILED
    assert "set shell: true" in (inst.tasks[0].reason or "")
    assert not marker.exists()


async def test_a_var_value_in_env_reaches_the_script_as_data(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    """The documented way to hand values to ``sh -c`` in an argv: environment variables."""
    marker = tmp_path / "pwned"
    value = f"$(touch {marker}); `touch {marker}`"
    async with make_engine() as engine:
        await engine.register_dag(_dag("env", {
            "cmd": ["sh", "-c", 'printf %s "$V"'], "env": {"V": "{{v}}"}, "saveAs": "out"}))
        inst = await engine.run_dag("env", {"v": value}, wait=30)
    assert inst.status == InstanceStatus.SUCCESS, inst.tasks[0].reason
    assert inst.share_data["out"] == value
    assert not marker.exists()


@pytest.mark.parametrize("params", [
    {"cmd": "printf %s {{v}}", "shell": True},
    {"cmd": ["printf", "%s", "{{v}}"]},
    {"cmd": ["true"], "env": {"BIG": "{{v}}"}},
], ids=["script", "argv", "env"])
async def test_a_value_over_the_per_string_limit_fails_with_a_clear_reason(
    make_engine: Callable[..., Engine], params: dict[str, Any]
) -> None:
    """Linux refuses one argument or NAME=value over 128 KiB: the reason names the limit and
    what was too large, not the OS's bare "Argument list too long"."""
    async with make_engine() as engine:
        await engine.register_dag(_dag("big", params))
        inst = await engine.run_dag("big", {"v": "x" * 140_000}, wait=30)
    assert inst.status == InstanceStatus.FAILED
    reason = inst.tasks[0].reason or ""
    assert "131,072 bytes" in reason and "too long" not in reason, reason
    assert "x" * 100 not in reason
