"""/api/v1/dag-instances over a real server: filters and cursor pagination, reading instances
and tasks, commands on instances and tasks, and their 409s."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .dags import APPROVAL_YAML, chain, sleeper

API = "/api/v1/dag-instances"


def _apply(client: httpx.Client, dag: dict[str, Any]) -> None:
    r = client.post("/api/v1/dags", json=dag)
    assert r.status_code == 201, r.text


def _run(client: httpx.Client, dag_id: str, **body: Any) -> dict[str, Any]:
    r = client.post(f"/api/v1/dags/{dag_id}/run", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _until(client: httpx.Client, iid: str, *statuses: str, timeout: float = 15
           ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        inst: dict[str, Any] = client.get(f"{API}/{iid}").json()
        if inst["status"] in statuses or time.monotonic() > deadline:
            assert inst["status"] in statuses, inst
            return inst
        time.sleep(0.05)


def _tasks(inst: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["taskId"]: t for t in inst["tasks"]}


def test_list_filters_and_cursor_pagination(client: httpx.Client) -> None:
    _apply(client, chain("pg-ok", "ok"))
    _apply(client, chain("pg-bad", "fail"))
    ok_ids = [_run(client, "pg-ok", tags={"batch": "p1", "n": str(n)}, wait=10)["id"]
              for n in range(5)]
    bad = _run(client, "pg-bad", tags={"batch": "p1"}, wait=10)
    assert bad["status"] == "failed"

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"dagId": "pg-ok", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(API, params=params).json()
        pages += 1
        assert all(i["tasks"] == [] and i["dagId"] == "pg-ok" for i in page["items"])
        seen += [i["id"] for i in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == list(reversed(ok_ids))  # newest first, each once

    def ids(**params: Any) -> set[str]:
        r = client.get(API, params=params)
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["items"]}

    assert ids(tag="batch=p1") == {*ok_ids, bad["id"]}
    assert ids(tag=["batch=p1", "n=3"]) == {ok_ids[3]}  # ANDed
    assert ids(tag="batch=p1", status="failed") == {bad["id"]}
    assert ids(tag="batch=p1", status="failed,success") == {*ok_ids, bad["id"]}
    assert ids(tag="batch=p1", status=["failed", "running"]) == {bad["id"]}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert ids(tag="batch=p1", createdAfter=future) == set()
    assert ids(tag="batch=p1", createdBefore=past) == set()
    assert ids(tag="batch=p1", createdAfter=past, createdBefore=future) == {*ok_ids, bad["id"]}

    for params in ({"status": "sleeping"}, {"tag": "novalue"}, {"createdAfter": "yesterday"},
                   {"limit": 0}, {"limit": 5000}):
        r = client.get(API, params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"] in ("invalid_input", "invalid_request")


def test_get_with_tasks_attempts_and_traces(client: httpx.Client) -> None:
    _apply(client, {"id": "gt", "tasks": [
        {"id": "a", "actionName": "ok"},
        {"id": "b", "actionName": "fail", "dependOn": ["a"], "params": {"reason": "disk full"},
         "retry": {"maxAttempts": 2, "backoffSecs": 0.01}},
        {"id": "c", "actionName": "ok", "dependOn": ["b"]},
    ]})
    inst = _run(client, "gt", wait=10)
    assert inst["status"] == "failed"
    got = client.get(f"{API}/{inst['id']}").json()
    tasks = _tasks(got)
    assert tasks["a"]["status"] == "success"
    assert any("ok ran" in t["message"] for t in tasks["a"]["traces"])
    b = tasks["b"]
    assert b["status"] == "failed" and "disk full" in b["reason"]
    assert b["attempts"] == 2 and [a["attempt"] for a in b["attemptHistory"]] == [1, 2]
    assert all(a["worker"] == "api-test-node" for a in b["attemptHistory"])
    assert tasks["c"]["status"] == "init"

    task = client.get(f"{API}/{inst['id']}/tasks/b").json()
    assert task == b
    assert client.get(f"{API}/{inst['id']}/tasks/zz").status_code == 404
    assert client.get(f"{API}/no-such-instance").status_code == 404


def test_retry_and_conflicts_name_the_state(client: httpx.Client) -> None:
    _apply(client, chain("rt", "ok", "fail"))
    inst = _run(client, "rt", wait=10)
    iid = inst["id"]
    for verb in ("pause", "resume", "continue", "cancel"):
        r = client.post(f"{API}/{iid}/{verb}")
        assert r.status_code == 409, (verb, r.text)
        body = r.json()
        assert body["error"] == "invalid_state" and body["details"]["state"] == "failed"
        assert "failed" in body["message"]
    # (no wait: the retried instance fails again at once)
    r = client.post(f"{API}/{iid}/retry")
    assert r.status_code == 200, r.text
    again = _until(client, iid, "failed")
    deadline = time.monotonic() + 10
    while _tasks(again)["t2"]["attempts"] < 2 and time.monotonic() < deadline:
        again = _until(client, iid, "failed")
    assert _tasks(again)["t2"]["attempts"] == 2
    # a retry of a task that did not fail
    r = client.post(f"{API}/{iid}/retry", json={"taskIds": ["t1"]})
    assert r.status_code == 409 and r.json()["details"]["state"] == "success"
    # one task
    r = client.post(f"{API}/{iid}/tasks/t2/retry")
    assert r.status_code == 200, r.text
    assert r.json()["taskId"] == "t2"
    deadline = time.monotonic() + 10
    while _tasks(again)["t2"]["attempts"] < 3 and time.monotonic() < deadline:
        again = _until(client, iid, "failed")
    assert _tasks(again)["t2"]["attempts"] == 3
    assert client.post(f"{API}/{iid}/tasks/nope/retry").status_code == 404
    assert client.post(f"{API}/nope/retry").status_code == 404
    assert client.post(f"{API}/{iid}/retry", json={"taskIds": []}).status_code == 400


def test_pause_resume_cancel(client: httpx.Client) -> None:
    _apply(client, sleeper("pr", secs=1.0))
    iid = _run(client, "pr")["id"]
    _until(client, iid, "running")
    r = client.post(f"{API}/{iid}/pause", json={"wait": 5})
    assert r.status_code == 200 and r.json()["status"] == "paused", r.text
    r = client.post(f"{API}/{iid}/pause")
    assert r.status_code == 409 and r.json()["details"]["state"] == "paused"
    time.sleep(1.2)  # the running task finishes, the next does not start
    inst = _until(client, iid, "paused")
    assert _tasks(inst)["after"]["status"] == "init"
    r = client.post(f"{API}/{iid}/resume", json={"wait": 10})
    assert r.status_code == 200, r.text
    assert _until(client, iid, "success")["status"] == "success"

    iid = _run(client, "pr")["id"]
    _until(client, iid, "running")
    r = client.post(f"{API}/{iid}/cancel", json={"wait": 10})
    assert r.status_code == 200, r.text
    inst = _until(client, iid, "canceled")
    assert _tasks(inst)["after"]["status"] == "canceled"


def test_task_cancel_and_continue(client: httpx.Client) -> None:
    r = client.post("/api/v1/dags", content=APPROVAL_YAML.format(id="tc"),
                    headers={"content-type": "application/yaml"})
    assert r.status_code == 201
    inst = _run(client, "tc", wait=10)
    iid = inst["id"]
    assert inst["status"] == "blocked"
    assert _tasks(inst)["approve"]["status"] == "blocked"
    r = client.post(f"{API}/{iid}/tasks/plan/continue")
    assert r.status_code == 409 and r.json()["details"]["state"] == "success"
    r = client.post(f"{API}/{iid}/tasks/approve/continue", json={"wait": 10})
    assert r.status_code == 200, r.text
    assert _until(client, iid, "success")["status"] == "success"

    _apply(client, sleeper("tcan", secs=5))
    iid = _run(client, "tcan")["id"]
    _until(client, iid, "running")
    r = client.post(f"{API}/{iid}/tasks/after/cancel")
    assert r.status_code == 200, r.text
    assert _tasks(_until(client, iid, "running"))["after"]["status"] in ("init", "canceled")
    r = client.post(f"{API}/{iid}/cancel")
    assert r.status_code == 200, r.text
    _until(client, iid, "canceled")


def test_nodes(client: httpx.Client) -> None:
    nodes = client.get("/api/v1/nodes").json()["items"]
    assert [n["nodeId"] for n in nodes] == ["api-test-node"]
    node = nodes[0]
    assert node["isLeader"] is True and node["alive"] is True and node["role"] == "worker"
    assert {"ok", "fail", "sleep", "shell"} <= set(node["actions"])
    for key in ("heartbeatAt", "heartbeatAgeSecs", "capacity", "running", "assigned", "labels"):
        assert key in node
