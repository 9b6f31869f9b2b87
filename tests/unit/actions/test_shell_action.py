"""The shell action with real subprocesses."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from action_probe import Probe, parse
from pydantic import ValidationError

from tideflow.actions.shell import ShellAction, ShellParams
from tideflow.errors import ActionError


def params(**raw: object) -> ShellParams:
    result: ShellParams = parse(ShellAction(), raw)
    return result


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def stops_running(pid: int, within: float = 2.0) -> bool:
    """A signalled process dies asynchronously: give it a moment."""
    deadline = time.monotonic() + within
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def group_gone(pgid: int, within: float) -> bool:
    """Wait for every member of the group to be gone, zombies reaped by their new parent."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.05)
    return False


async def read_pids(path: Path, count: int) -> list[int]:
    for _ in range(200):
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        await asyncio.sleep(0.01)
    raise AssertionError(f"the command never wrote {count} pids to {path}")


async def test_runs_argv_and_traces_stdout(probe: Probe) -> None:
    await ShellAction().run(probe.ctx, params(cmd=["echo", "hello", "world"]))
    assert "stdout (last lines):\nhello world" in probe.traces
    assert probe.share == {}


async def test_nonzero_exit_fails_with_code_and_stderr_tail(probe: Probe) -> None:
    script = "for i in $(seq 1 100); do echo line-$i >&2; done; exit 3"
    with pytest.raises(ActionError) as caught:
        await ShellAction().run(probe.ctx, params(cmd=["sh", "-c", script]))
    reason = caught.value.message
    assert reason.startswith("exit code 3: ")
    assert "line-100" in reason
    assert "line-1\n" not in reason
    assert "stderr (last lines)" in probe.trace_text()


async def test_exit_without_stderr_says_so(probe: Probe) -> None:
    with pytest.raises(ActionError, match=r"^exit code 1 \(nothing on stderr\)$"):
        await ShellAction().run(probe.ctx, params(cmd=["false"]))


async def test_killed_by_signal_is_named(probe: Probe) -> None:
    with pytest.raises(ActionError, match="killed by signal SIGKILL"):
        await ShellAction().run(probe.ctx, params(cmd="kill -9 $$", shell=True))


async def test_command_not_found(probe: Probe) -> None:
    with pytest.raises(ActionError, match="command not found: 'no-such-program-xyz'"):
        await ShellAction().run(probe.ctx, params(cmd=["no-such-program-xyz"]))


async def test_env_is_merged_over_the_node_environment(
    probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_NODE", "node-value")
    p = params(cmd=["sh", "-c", "echo $FROM_NODE $MINE"], env={"MINE": 7}, saveAs="out")
    await ShellAction().run(probe.ctx, p)
    assert probe.share["out"] == "node-value 7"
    assert probe.written == ["out"]


async def test_cwd(probe: Probe, tmp_path: Path) -> None:
    await ShellAction().run(probe.ctx, params(cmd=["pwd"], cwd=str(tmp_path), saveAs="dir"))
    assert probe.share["dir"] == str(tmp_path)


async def test_missing_cwd_is_a_clear_error(probe: Probe, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="is not an existing directory"):
        await ShellAction().run(probe.ctx, params(cmd=["pwd"], cwd=str(tmp_path / "nope")))


async def test_rendered_values_stay_literal_arguments(probe: Probe, tmp_path: Path) -> None:
    marker = tmp_path / "x"
    hostile = ["; rm -rf /", f"$(touch {marker})", f"`touch {marker}`", "a b"]
    await ShellAction().run(probe.ctx, params(cmd=["printf", "%s\\n", *hostile], saveAs="out"))
    assert probe.share["out"].split("\n") == hostile
    assert not marker.exists()


async def test_shell_true_runs_a_script(probe: Probe) -> None:
    await ShellAction().run(
        probe.ctx, params(cmd="printf 'a\\nb\\nc\\n' | wc -l", shell=True, saveAs="n")
    )
    assert probe.share["n"].strip() == "3"


def test_string_cmd_needs_shell_true() -> None:
    with pytest.raises(ValidationError, match="set shell: true"):
        params(cmd="echo hi")


def test_list_cmd_with_shell_true_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be one string"):
        params(cmd=["echo", "hi"], shell=True)


@pytest.mark.parametrize("cmd", [[], [""]])
def test_empty_cmd_is_refused(cmd: list[str]) -> None:
    with pytest.raises(ValidationError, match="cmd is empty"):
        params(cmd=cmd)


def test_unknown_param_is_refused() -> None:
    with pytest.raises(ValidationError, match="comand"):
        params(comand=["echo"])


async def test_weak_typing_turns_numbers_into_text(probe: Probe) -> None:
    p = params(cmd=["echo", 1, 2.5, True], shell="false")
    assert p.cmd == ["echo", "1", "2.5", "true"]
    assert p.shell is False
    await ShellAction().run(probe.ctx, p.model_copy(update={"save_as": "out"}))
    assert probe.share["out"] == "1 2.5 true"


async def test_timeout_kills_the_whole_group(probe: Probe, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = f"echo $$ > {pids_file}; sleep 100 & echo $! >> {pids_file}; echo busy; sleep 100"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ShellAction().run(probe.ctx, params(cmd=script, shell=True)), 0.5)
    assert time.monotonic() - started < 2.0  # SIGTERM was enough: no wait for the grace
    assert "stdout (last lines):\nbusy" in probe.traces
    leader, background = await read_pids(pids_file, 2)
    assert await stops_running(leader)
    assert await stops_running(background)
    assert await group_gone(leader, within=10.0)


async def test_cancel_kills_the_group_and_propagates(probe: Probe, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = f"echo $$ > {pids_file}; sleep 100 & echo $! >> {pids_file}; wait"
    task = asyncio.create_task(ShellAction().run(probe.ctx, params(cmd=script, shell=True)))
    leader, background = await read_pids(pids_file, 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await stops_running(leader)
    assert await stops_running(background)
    assert await group_gone(leader, within=10.0)


async def test_a_group_ignoring_sigterm_gets_sigkill(probe: Probe, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = f"trap '' TERM; echo $$ > {pids_file}; sleep 100 & echo $! >> {pids_file}; wait"
    action = ShellAction(kill_grace=0.3)
    task = asyncio.create_task(action.run(probe.ctx, params(cmd=script, shell=True)))
    leader, background = await read_pids(pids_file, 2)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started >= 0.3
    assert await stops_running(leader)
    assert await stops_running(background)


async def test_processes_left_running_are_stopped_at_exit(probe: Probe, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = f"sleep 100 & echo $! > {pids_file}; echo done"
    started = time.monotonic()
    await ShellAction().run(probe.ctx, params(cmd=script, shell=True))
    assert time.monotonic() - started < 2.0
    (background,) = await read_pids(pids_file, 1)
    assert await stops_running(background)
    assert "stopped the processes the command left running" in probe.trace_text()


async def test_output_tail_is_bounded(probe: Probe) -> None:
    action = ShellAction(tail_bytes=4096, tail_lines=5)
    await action.run(probe.ctx, params(cmd=["seq", "1", "200000"]))
    (stdout,) = [t for t in probe.traces if t.startswith("stdout")]
    assert stdout.splitlines()[1:] == [str(n) for n in range(199996, 200001)]


async def test_save_as_refuses_huge_output(probe: Probe) -> None:
    with pytest.raises(ActionError, match="too large to save"):
        await ShellAction().run(
            probe.ctx, params(cmd="head -c 2000000 /dev/zero", shell=True, saveAs="big")
        )
    assert "big" not in probe.share


async def test_output_is_the_exit_code(probe: Probe) -> None:
    assert await ShellAction().run(probe.ctx, params(cmd=["echo", "{}"])) == {"exitCode": 0}


async def test_output_json_parses_stdout(probe: Probe) -> None:
    script = 'echo \'{"id": "c-1", "nodes": [1, 2]}\''
    out = await ShellAction().run(probe.ctx, params(cmd=["sh", "-c", script], outputJson=True))
    assert out == {"exitCode": 0, "json": {"id": "c-1", "nodes": [1, 2]}}


@pytest.mark.parametrize("stdout", ["not json", "", "NaN"])
async def test_output_json_of_a_stdout_that_is_not_json_fails(probe: Probe, stdout: str) -> None:
    with pytest.raises(ActionError, match="outputJson: true, but stdout is not JSON"):
        await ShellAction().run(probe.ctx, params(cmd=["printf", stdout], outputJson=True))
