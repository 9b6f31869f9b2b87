"""Small DAG documents used across the engine tests."""

from __future__ import annotations

from typing import Any


def task(tid: str, action: str = "noop", deps: list[str] | None = None, **extra: Any
         ) -> dict[str, Any]:
    out: dict[str, Any] = {"id": tid, "actionName": action, "dependOn": deps or []}
    out.update(extra)
    return out


def dag(dag_id: str, *tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": dag_id, "tasks": list(tasks), **extra}
