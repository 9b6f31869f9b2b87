"""Task and DAG ids with spaces, slashes, '?', '#', '%', quotes and non-ASCII (any text Fastflow
accepts) through the API, URL-encoded."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

ODD = "a b/c?d#e%f \"q\" 'x' é日本"


def _seg(value: str) -> str:
    return quote(value, safe="")


@pytest.mark.parametrize("prefix", ["dag-instances/{iid}/tasks", "task-instances/{iid}"])
def test_odd_task_and_dag_ids_through_the_api(client: httpx.Client, prefix: str) -> None:
    dag_id = f"odd {prefix[:4]}/dag?#%é"
    dag = {"id": dag_id, "tasks": [
        {"id": "common -child", "actionName": "ok"},
        {"id": ODD, "actionName": "approval", "dependOn": ["common -child"]},
        {"id": "after/it", "actionName": "ok", "dependOn": [ODD]},
    ]}
    applied = client.post("/api/v1/dags", json=dag)
    assert applied.status_code == 201, applied.text
    got = client.get(f"/api/v1/dags/{_seg(dag_id)}")
    assert got.status_code == 200 and got.json()["id"] == dag_id
    inst: dict[str, Any] = client.post(f"/api/v1/dags/{_seg(dag_id)}/run",
                                       json={"wait": 10}).json()
    assert inst["dagId"] == dag_id and inst["status"] == "blocked", inst
    base = "/api/v1/" + prefix.format(iid=inst["id"])
    task = client.get(f"{base}/{_seg(ODD)}")
    assert task.status_code == 200, task.text
    assert (task.json()["taskId"], task.json()["status"]) == (ODD, "blocked")
    assert client.get(f"{base}/{_seg('common -child')}").json()["status"] == "success"
    assert client.get(f"{base}/{_seg('nope/x')}").status_code == 404
    cont = client.post(f"{base}/{_seg(ODD)}/continue", json={"wait": 10})
    assert cont.status_code == 200, cont.text
    deadline = time.monotonic() + 20
    while (final := client.get(f"/api/v1/dag-instances/{inst['id']}").json())["status"] != (
        "success"
    ):
        assert time.monotonic() < deadline, final
        time.sleep(0.1)
    assert {t["taskId"] for t in final["tasks"]} == {"common -child", ODD, "after/it"}
    paused = client.post(f"/api/v1/dags/{_seg(dag_id)}/pause")
    assert paused.status_code == 200 and paused.json()["id"] == dag_id, paused.text
    assert client.post(f"/api/v1/dags/{_seg(dag_id)}/resume").status_code == 200
    assert client.delete(f"/api/v1/dags/{_seg(dag_id)}").status_code == 204
