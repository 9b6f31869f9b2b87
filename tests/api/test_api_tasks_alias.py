"""Task instances are also addressed under /api/v1/task-instances/{instanceId}/{taskId}."""

from __future__ import annotations

from typing import Any

import httpx


def test_task_instance_routes(client: httpx.Client) -> None:
    dag = {"id": "alias", "tasks": [
        {"id": "ask", "actionName": "approval"},
        {"id": "go", "actionName": "shell", "dependOn": ["ask"], "params": {"cmd": ["true"]}},
    ]}
    applied = client.post("/api/v1/dags", json=dag)
    assert applied.status_code in (200, 201), applied.text
    inst: dict[str, Any] = client.post("/api/v1/dags/alias/run", json={"wait": 10}).json()
    assert inst["status"] == "blocked", inst
    got = client.get(f"/api/v1/task-instances/{inst['id']}/ask")
    assert got.status_code == 200 and got.json()["status"] == "blocked"
    assert client.get(f"/api/v1/task-instances/{inst['id']}/nope").status_code == 404
    cont = client.post(f"/api/v1/task-instances/{inst['id']}/ask/continue", json={"wait": 10})
    assert cont.status_code == 200, cont.text
    refused = client.post(f"/api/v1/task-instances/{inst['id']}/ask/continue")
    assert refused.status_code == 409
    assert refused.json()["error"] in ("invalid_state", "conflict")
