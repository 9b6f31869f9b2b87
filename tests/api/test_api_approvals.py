"""Approval decisions over HTTP: continue with inputs and by (JSON body), reject."""

from __future__ import annotations

import time
from typing import Any

import httpx

API = "/api/v1/dag-instances"
HANDOVER = """
id: {id}
tasks:
  - {{id: plan, actionName: ok}}
  - id: sign-off
    actionName: approval
    dependOn: [plan]
    params:
      approvers: [alice]
      inputs:
        ticket: {{type: string, required: true}}
        size: {{type: integer, minimum: 1}}
        dry: {{type: boolean, defaultValue: false}}
  - {{id: apply, actionName: ok, dependOn: [sign-off]}}
"""


def _blocked(client: httpx.Client, dag_id: str) -> str:
    r = client.post("/api/v1/dags", content=HANDOVER.format(id=dag_id),
                    headers={"content-type": "application/yaml"})
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/dags/{dag_id}/run", json={"wait": 20})
    assert r.status_code in (200, 201), r.text
    assert r.json()["status"] == "blocked"
    return str(r.json()["id"])


def _until(client: httpx.Client, iid: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        inst: dict[str, Any] = client.get(f"{API}/{iid}").json()
        if inst["status"] == status:
            return inst
        time.sleep(0.1)
    raise AssertionError(f"instance {iid} is {inst['status']}, not {status}")


def _task(inst: dict[str, Any], tid: str) -> dict[str, Any]:
    return next(t for t in inst["tasks"] if t["taskId"] == tid)


def test_continue_with_a_json_decision(client: httpx.Client) -> None:
    iid = _blocked(client, "api-handover")
    for body, expect in (
        ({"inputs": {"ticket": "T-1", "size": 0}, "by": "alice"}, "at least 1"),
        ({"inputs": {"ticket": "T-1", "size": "x"}, "by": "alice"}, "must be an integer"),
        ({"inputs": {"ticket": "T-1"}}, "may only be decided by alice"),
        ({"inputs": {"size": 2}, "by": "alice"}, "input 'ticket' is required"),
        ({"inputs": {"ticket": "T-1"}, "by": "alice", "other": 1}, "other"),
    ):
        r = client.post(f"{API}/{iid}/continue", json=body)
        assert r.status_code in (400, 422), r.text
        assert expect in r.text, r.text
    r = client.post(f"{API}/{iid}/continue", json={"inputs": {"size": 20}, "by": "carol"})
    assert r.status_code == 400, r.text
    problems = r.json()["details"]["problems"]
    assert len(problems) == 2 and "'carol' may not decide" in problems[0]
    assert "input 'ticket' is required" in problems[1]
    r = client.post(f"{API}/{iid}/continue", json={"inputs": {"ticket": "T-1"}})
    assert r.status_code == 400 and len(r.json()["details"]["problems"]) == 1, r.text
    assert _task(client.get(f"{API}/{iid}").json(), "sign-off")["status"] == "blocked"
    r = client.post(f"{API}/{iid}/tasks/sign-off/continue",
                    json={"inputs": {"ticket": "T-1", "size": 4, "dry": "true"}, "by": "alice"})
    assert r.status_code == 200, r.text
    done = _until(client, iid, "success")
    traces = [t["message"] for t in _task(done, "sign-off")["traces"]]
    assert "approved by alice: ticket='T-1', size=4, dry=True" in traces


def test_reject_over_http(client: httpx.Client) -> None:
    iid = _blocked(client, "api-reject")
    r = client.post(f"{API}/{iid}/reject", json={"taskIds": ["plan"], "by": "alice"})
    assert r.status_code == 409, r.text
    r = client.post(f"{API}/{iid}/reject", json={"reason": "no", "by": "bob"})
    assert r.status_code == 400 and "'bob' may not decide" in r.text
    r = client.post(f"/api/v1/task-instances/{iid}/sign-off/reject",
                    json={"reason": "wrong ticket", "by": "alice", "wait": 10})
    assert r.status_code == 200, r.text
    done = _until(client, iid, "failed")
    assert _task(done, "sign-off")["reason"] == "rejected by alice: wrong ticket"
    assert done["compensation"] is None
    output = _task(done, "sign-off")["output"]
    assert output["decision"] == "rejected" and output["reason"] == "wrong ticket"
    assert output["by"] == "alice" and output["at"]
