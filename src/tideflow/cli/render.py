"""How the client verbs print: Rich tables for people, the API's JSON for scripts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..cluster.cron import next_fire_times
from ..serialize import instance_from_json
from .progress import summary

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


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _status(value: str) -> Text:
    return Text(value, style=_STYLE.get(value, ""))


def _kv(mapping: dict[str, str] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (mapping or {}).items())


def _when(value: str | None) -> str:
    """An ISO time, shortened to the second."""
    if not value:
        return ""
    return value.replace("T", " ")[:19]


def dags_table(console: Console, dags: list[Json]) -> None:
    table = Table("DAG", "VERSION", "STATUS", "TASKS", "CRON", "UPDATED", box=None)
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(d["id"]) for d in dags), default=3)
    for d in dags:
        definition = d.get("definition") or {}
        table.add_row(
            d["id"], str(d["version"]), _status(d["status"]),
            str(len(definition.get("tasks") or [])), definition.get("cron") or "",
            _when(d.get("updatedAt")),
        )
    console.print(table)


def dag_detail(console: Console, dag: Json, *, fire_times: int) -> None:
    definition = dag.get("definition") or {}
    console.print(Text(f"# DAG {dag['id']} version {dag['version']} ({dag['status']})",
                       style="bold"))
    console.print(yaml.safe_dump(definition, sort_keys=False, allow_unicode=True).rstrip(),
                  highlight=False, markup=False)
    cron = definition.get("cron")
    if cron and fire_times > 0:
        zone = definition.get("timezone") or "UTC"
        console.print(Text(f"\nnext runs ({cron}, {zone}):", style="bold"))
        upcoming = next_fire_times(cron, definition.get("timezone"), datetime.now(UTC),
                                   fire_times)
        shown_in = ZoneInfo(definition["timezone"]) if definition.get("timezone") else UTC
        for when in upcoming:  # people read a schedule in its own time zone
            console.print(f"  {when.astimezone(shown_in).isoformat()}", highlight=False)


def instances_table(console: Console, items: list[Json]) -> None:
    table = Table("INSTANCE", "DAG", "STATUS", "TRIGGER", "TAGS", "CREATED", "ENDED", box=None)
    # ids are what people copy: never cut them
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(i["id"]) for i in items), default=8)
    for i in items:
        table.add_row(i["id"], i["dagId"], _status(i["status"]), i.get("trigger") or "",
                      _kv(i.get("tags")), _when(i.get("createdAt")), _when(i.get("endedAt")))
    console.print(table)


def instance_detail(console: Console, inst: Json) -> None:
    summary(console, instance_from_json(inst))
    for label, key in (("vars", "vars"), ("tags", "tags"), ("share data", "shareData")):
        if inst.get(key):
            console.print(Text(f"{label}: {_kv(inst[key])}", style="dim"), highlight=False)
    outputs = [(t["taskId"], t["output"]) for t in inst.get("tasks") or []
               if t.get("output") is not None]
    if outputs:
        console.print(Text("outputs:", style="dim"))
        for task_id, output in outputs:
            text = json.dumps(output, ensure_ascii=False)
            if len(text) > _OUTPUT_SHOWN:  # --json has it whole
                text = text[: _OUTPUT_SHOWN - 3] + "..."
            console.print(Text(f"  {task_id}: {text}", style="dim"), highlight=False)


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
