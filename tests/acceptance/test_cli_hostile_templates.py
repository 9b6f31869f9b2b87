"""``tideflow run`` with templates that would take the machine's memory, or a shell script
given hostile values: the run ends, with a reason, and nothing runs that was not meant to."""

from __future__ import annotations

from pathlib import Path

from .clihelp import Cli


def test_a_huge_template_fails_the_task_instead_of_hanging(cli: Cli) -> None:
    dag = cli.write("huge.yaml", """
tasks:
  - {id: pad, actionName: shell, params: {cmd: [echo, "{{ 'x'.ljust(10**9) }}"]}}
  - {id: after, actionName: shell, dependOn: [pad], params: {cmd: [echo, ok]}}
""")
    proc = cli.run("run", str(dag), "--json", timeout=120)
    assert proc.returncode == 1, proc.stderr
    inst = cli.as_json(proc)
    pad = next(t for t in inst["tasks"] if t["taskId"] == "pad")
    assert pad["status"] == "failed"
    assert "template size limit of 1,048,576 characters" in pad["reason"]
    assert "ljust" in pad["reason"]


def test_a_hostile_var_in_a_shell_script_runs_nothing(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    dag = cli.write("inj.yaml", """
vars:
  v: {}
tasks:
  - id: t
    actionName: shell
    params:
      shell: true
      saveAs: out
      cmd: |
        echo "{{v}}" '{{v}}'
        cat <<EOF
        {{v}}
        EOF
""")
    value = f"$(touch {marker})'`touch {marker}`"
    proc = cli.run("run", str(dag), "--var", f"v={value}", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert cli.as_json(proc)["shareData"]["out"] == f"{value} {value}\n{value}"
    assert not marker.exists()
