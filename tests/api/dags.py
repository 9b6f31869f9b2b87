"""DAG documents the API tests apply."""

from __future__ import annotations

from typing import Any


def chain(dag_id: str, *actions: str, **extra: Any) -> dict[str, Any]:
    """Tasks t1..tn, each depending on the one before, with the given action names."""
    tasks: list[dict[str, Any]] = []
    for n, action in enumerate(actions, 1):
        task: dict[str, Any] = {"id": f"t{n}", "actionName": action}
        if n > 1:
            task["dependOn"] = [f"t{n - 1}"]
        tasks.append(task)
    return {"id": dag_id, "tasks": tasks, **extra}


def sleeper(dag_id: str, secs: float = 2.0) -> dict[str, Any]:
    return {
        "id": dag_id,
        "tasks": [
            {"id": "nap", "actionName": "sleep", "params": {"secs": secs}, "timeoutSecs": 60},
            {"id": "after", "actionName": "ok", "dependOn": ["nap"]},
        ],
    }


APPROVAL_YAML = """
id: {id}
vars:
  region: {{defaultValue: eu}}
  password: {{defaultValue: hunter22, secret: true}}
tasks:
  - id: plan
    actionName: ok
  - id: approve
    actionName: approval
    dependOn: [plan]
  - id: apply
    actionName: ok
    dependOn: [approve]
"""
