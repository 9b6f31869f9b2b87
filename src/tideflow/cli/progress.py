"""Live progress of one instance in the terminal (Rich)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..states import TaskStatus
from ..store.records import InstanceRecord
from .screen import printable

_DONE = {TaskStatus.SUCCESS, TaskStatus.SKIPPED, TaskStatus.FAILED, TaskStatus.CANCELED}
_STYLE = {
    "success": "green",
    "skipped": "dim",
    "failed": "red",
    "canceled": "yellow",
    "blocked": "magenta",
    "running": "cyan",
    "retrying": "yellow",
}


class ProgressView:
    """Renders: a bar of tasks done/total, the running tasks, and failures as they happen."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.bar = self.progress.add_task("tasks", total=total)
        self._reported: set[tuple[str, int]] = set()
        self._running = Text()

    def renderable(self) -> Group:
        return Group(self.progress, self._running)

    def update(self, inst: InstanceRecord) -> None:
        done = sum(1 for t in inst.tasks if t.status in _DONE)
        self.progress.update(self.bar, completed=done, description=f"{inst.dag_id} {inst.status}")
        running = [t.task_id for t in inst.tasks
                   if t.status in (TaskStatus.RUNNING, TaskStatus.ENDING, TaskStatus.RETRYING)]
        shown = ", ".join(running[:8]) + (f" (+{len(running) - 8})" if len(running) > 8 else "")
        self._running = Text(f"running: {shown}" if running else "", style="cyan")
        for t in inst.tasks:
            # Every failed attempt is reported once, from the attempt history: sampling the
            # task's current state alone misses attempts that fail between two updates.
            for a in t.attempt_history:
                key = (t.task_id, a.attempt)
                if a.status != TaskStatus.FAILED or key in self._reported:
                    continue
                self._reported.add(key)
                final = t.status == TaskStatus.FAILED and a.attempt == t.attempts
                what = "failed" if final else "failed, will retry"
                self.console.print(
                    Text(f"✗ {t.task_id} attempt {a.attempt} {what}: {printable(a.reason or '')}",
                         style="red")
                )


def summary(console: Console, inst: InstanceRecord) -> None:
    style = _STYLE.get(inst.status.value, "bold")
    console.print(Text(f"instance {inst.id} of {inst.dag_id}: {inst.status.value}", style=style))
    for t in inst.tasks:
        line = Text(f"  {t.status.value:<9} ", style=_STYLE.get(t.status.value, ""))
        line.append(t.task_id)
        if t.attempts > 1:
            line.append(f" ({t.attempts} attempts)", style="dim")
        if t.reason and t.status != TaskStatus.SUCCESS:
            line.append(f" — {printable(t.reason)}", style="dim")
        console.print(line)
    if inst.reason and inst.status.value != "success":
        console.print(Text(f"reason: {printable(inst.reason)}", style=style))
    if inst.compensation is not None:
        console.print(Text(f"compensation: {inst.compensation}",
                           style="red" if inst.compensation == "failed" else "dim"))
