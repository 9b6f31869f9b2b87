"""How the client verbs print: Rich tables for people, the API's JSON for scripts.

What goes to a pipe or a file is never wrapped, cut or coloured: ids stay whole (scripts copy
them) and ``dag show`` stays YAML, whatever width the terminal it was started from had."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..definition.vartypes import text as value_text
from ..serialize import instance_from_json
from .progress import summary
from .screen import SHOW_LINE_CHARS, log_text_lines, printable

Json = dict[str, Any]

#: characters of a task's output shown in an instance's detail
_OUTPUT_SHOWN = 200

_STYLE = {
    "success": "green",
    "failed": "red",
    "canceled": "yellow",
    "blocked": "magenta",
    "paused": "magenta",
    "running": "cyan",
    "stopped": "yellow",
}


#: the width a table may take when stdout is not a terminal: no column is ever squeezed
_UNBOUNDED = 1_000_000


def out_console() -> Console:
    """The console for stdout: Rich's usual one on a terminal; else one that never wraps,
    cuts or colours (a table takes the width its cells need). Either way what it prints is
    data: ``[red]`` or ``:rocket:`` in a name is shown as written."""
    plain: dict[str, Any] = {"markup": False, "emoji": False, "highlight": False}
    console = Console(**plain)
    if console.is_terminal:
        return console
    return Console(width=_UNBOUNDED, soft_wrap=True, color_system=None, **plain)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _status(value: str) -> Text:
    return Text(value, style=_STYLE.get(value, ""))


def _kv(mapping: dict[str, Any] | None) -> str:
    # typed var values as they are written: size=5, dryRun=true, regions=["a"]
    return ", ".join(f"{k}={value_text(v)}" for k, v in (mapping or {}).items())


def _when(value: str | None) -> str:
    """An ISO time, shortened to the second."""
    if not value:
        return ""
    return value.replace("T", " ")[:19]


def dags_table(console: Console, dags: list[Json]) -> None:
    table = Table("DAG", "VERSION", "STATUS", "TASKS", "CRON", "SCHEDULE", "UPDATED", box=None)
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(d["id"]) for d in dags), default=3)
    for d in dags:
        definition = d.get("definition") or {}
        table.add_row(
            d["id"], str(d["version"]), _status(d["status"]),
            str(len(definition.get("tasks") or [])), definition.get("cron") or "",
            _schedule(d), _when(d.get("updatedAt")),
        )
    console.print(table)


def _schedule(dag: Json) -> str:
    """Whether the DAG's cron fires: paused, stopped (with its status), or running."""
    if not (dag.get("definition") or {}).get("cron"):
        return ""
    if dag.get("paused"):
        return "paused"
    return "running" if dag["status"] == "normal" else "stopped"


def dag_detail(console: Console, dag: Json) -> None:
    """The definition as YAML; what is not the definition (the header, the next fire times)
    is written as YAML comments, so the output can be saved and applied again."""
    definition = dag.get("definition") or {}
    state = dag["status"] + (", schedule paused" if dag.get("paused") else "")
    console.print(Text(f"# DAG {dag['id']} version {dag['version']} ({state})", style="bold"),
                  soft_wrap=True)
    text = yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=_UNBOUNDED)
    console.print(text.rstrip(), soft_wrap=True)
    upcoming = dag.get("nextFireTimes") or []
    if upcoming:
        zone = definition.get("timezone") or "UTC"
        console.print(Text(f"# next runs ({definition.get('cron')}, {zone}):", style="bold"),
                      soft_wrap=True)
        shown_in = ZoneInfo(zone)
        for when in upcoming:  # people read a schedule in its own time zone
            local = datetime.fromisoformat(when).astimezone(shown_in)
            console.print(f"#   {local.isoformat()}", soft_wrap=True)


def instances_table(console: Console, items: list[Json]) -> None:
    table = Table("INSTANCE", "DAG", "STATUS", "TRIGGER", "TAGS", "CREATED", "ENDED", box=None)
    # ids are what people copy: never cut them
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(i["id"]) for i in items), default=8)
    for i in items:
        table.add_row(i["id"], i["dagId"], _status(i["status"]), i.get("trigger") or "",
                      _kv(i.get("tags")), _when(i.get("createdAt")), _when(i.get("endedAt")))
    console.print(table)


def instance_detail(console: Console, inst: Json, *, outputs_shown: bool = True) -> None:
    summary(console, instance_from_json(inst))
    for label, key in (("vars", "vars"), ("tags", "tags"), ("share data", "shareData")):
        if inst.get(key):
            console.print(Text(f"{label}: {printable(_kv(inst[key]))}", style="dim"),
                          highlight=False)
    outputs = [(t["taskId"], t["output"]) for t in inst.get("tasks") or []
               if t.get("output") is not None and outputs_shown]
    if outputs:
        console.print(Text("outputs:", style="dim"))
        for task_id, output in outputs:
            text = json.dumps(output, ensure_ascii=False)
            if len(text) > _OUTPUT_SHOWN:  # --json has it whole
                text = text[: _OUTPUT_SHOWN - 3] + "..."
            console.print(Text(f"  {task_id}: {text}", style="dim"), highlight=False)


def instance_report(console: Console, inst: Json, tails: dict[str, list[Json]]) -> None:
    """``ins show``: the summary, then each task that ran: its output, reason, every attempt
    with its own reason, and the last lines of its log (``tails``, by task id)."""
    instance_detail(console, inst, outputs_shown=False)
    for t in inst.get("tasks") or []:
        history = t.get("attemptHistory") or []
        tail = tails.get(t["taskId"]) or []
        if not (history or t.get("output") is not None or t.get("reason") or tail):
            continue
        head = Text(f"\ntask {t['taskId']}: ", style="bold")
        head.append(t["status"], style=_STYLE.get(t["status"], ""))
        if t.get("attempts"):
            head.append(f" ({t['attempts']} attempt{'s' if t['attempts'] != 1 else ''})",
                        style="dim")
        console.print(head, highlight=False)
        if t.get("reason"):
            console.print(Text(f"  reason: {printable(t['reason'])}"), highlight=False)
        if t.get("output") is not None:
            text = json.dumps(t["output"], ensure_ascii=False)
            if len(text) > _OUTPUT_SHOWN:
                text = text[: _OUTPUT_SHOWN - 3] + "..."
            console.print(Text(f"  output: {text}"), highlight=False)
        for a in history:
            line = Text(f"  attempt {a['attempt']}  ")
            line.append(f"{a['status']:<8}", style=_STYLE.get(a["status"], ""))
            line.append(f" {_when(a.get('startedAt'))}", style="dim")
            seconds = _seconds(a.get("startedAt"), a.get("endedAt"))
            if seconds is not None:
                line.append(f" ({seconds:.1f}s)", style="dim")
            if a.get("worker"):
                line.append(f" on {a['worker']}", style="dim")
            if a.get("reason"):
                line.append(f": {printable(a['reason'])}")
            console.print(line, highlight=False)
        if tail:
            console.print(Text("  last log lines:", style="dim"))
            for x in tail:
                label = x.get("level") if x.get("stream") == "log" else x.get("stream")
                when = str(x.get("time") or "")[11:23]
                for part in log_text_lines(f"    {when} #{x.get('attempt')} {label} ",
                                           str(x.get("text")), SHOW_LINE_CHARS):
                    console.print(Text(part), highlight=False, soft_wrap=True)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


def nodes_table(console: Console, nodes: list[Json]) -> None:
    table = Table("NODE", "ROLE", "LEADER", "ALIVE", "HEARTBEAT", "RUNNING", "ASSIGNED",
                  "LABELS", "ACTIONS", box=None)
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(n["nodeId"]) for n in nodes), default=4)
    for n in nodes:
        table.add_row(
            n["nodeId"], n["role"], "yes" if n["isLeader"] else "", "yes" if n["alive"] else "no",
            f"{n['heartbeatAgeSecs']:.1f}s ago", f"{n['running']}/{n['capacity']}",
            str(n["assigned"]), _kv(n.get("labels")), ", ".join(n.get("actions") or []),
        )
    console.print(table)
