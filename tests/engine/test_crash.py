"""A process killed with SIGKILL mid-run: the next engine on the file finishes its work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from tideflow import Engine, EngineSettings

    DAG = {"id": "crash", "tasks": [
        {"id": "slow", "actionName": "shell",
         "params": {"cmd": ["sh", "-c", "echo run >> " + sys.argv[2]
                            + "; while [ -f " + sys.argv[3] + " ]; do sleep 0.1; done"]}},
        {"id": "after", "actionName": "shell", "dependOn": ["slow"],
         "params": {"cmd": ["echo", "after"]}},
    ]}

    async def main():
        async with Engine.from_url(sys.argv[1], settings=EngineSettings(node_id="n")) as e:
            if sys.argv[4] == "start":
                await e.register_dag(DAG)
                inst = await e.run_dag("crash")
                print(inst.id, flush=True)
                await asyncio.sleep(3600)
            else:
                inst = await e.wait_for(sys.argv[4], timeout=60, settled=False)
                import json
                log = await e.task_logs(inst.id, "slow", attempt=1)
                print(json.dumps({"status": inst.status.value,
                                  "attempts": [t.attempts for t in inst.tasks],
                                  "first": inst.tasks[0].attempt_history[0].reason,
                                  "log": [x.text for x in log.lines]}))

    asyncio.run(main())
""")


def test_sigkill_then_restart_finishes(tmp_path: Path) -> None:
    script = tmp_path / "node.py"
    script.write_text(SCRIPT)
    db = f"sqlite:///{tmp_path / 'crash.db'}"
    runs = tmp_path / "runs"
    hold = tmp_path / "hold"
    hold.write_text("")
    first = subprocess.Popen([sys.executable, str(script), db, str(runs), str(hold), "start"],
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    instance_id = first.stdout.readline().strip()
    deadline = time.monotonic() + 20
    while not (runs.exists() and runs.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    hold.unlink()  # also ends the killed node's orphaned shell child
    second = subprocess.run([sys.executable, str(script), db, str(runs), str(hold), instance_id],
                            capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["status"] == "success"
    assert result["attempts"] == [2, 1]
    assert "interrupted" in result["first"]
    # the interrupted attempt's log says so (its earlier lines may have died with the node)
    assert result["log"][-1] == (
        "attempt 1 interrupted: the node running it stopped (n); n picked the instance up")
    assert runs.read_text().count("run") == 2
