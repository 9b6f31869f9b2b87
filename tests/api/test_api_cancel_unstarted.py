"""Over HTTP: a run waiting for a worker whose labels match its selector is canceled at once
(200, ``canceled``, nothing ever starts); a pause of it is a 409 naming its state."""

from __future__ import annotations

import time

import httpx

API = "/api/v1/dag-instances"


def test_cancel_of_a_run_waiting_for_a_matching_worker(client: httpx.Client) -> None:
    r = client.post("/api/v1/dags", json={
        "id": "api-unstarted", "tasks": [{"id": "a", "actionName": "ok"},
                                         {"id": "b", "actionName": "ok", "dependOn": ["a"]}]})
    assert r.status_code in (200, 201), r.text
    r = client.post("/api/v1/dags/api-unstarted/run", json={"selector": {"gpu": "yes"}})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    deadline = time.monotonic() + 15
    while "selector" not in (client.get(f"{API}/{iid}").json()["reason"] or ""):
        assert time.monotonic() < deadline, "the run never waited for a matching worker"
        time.sleep(0.1)

    r = client.post(f"{API}/{iid}/pause")
    assert r.status_code == 409, r.text
    assert "it is init" in r.text

    r = client.post(f"{API}/{iid}/cancel", json={"wait": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "canceled"
    assert [(t["status"], t["attempts"]) for t in body["tasks"]] == [("canceled", 0)] * 2
    time.sleep(0.5)
    again = client.get(f"{API}/{iid}").json()
    assert again["status"] == "canceled" and again["worker"] is None
    assert client.post(f"{API}/{iid}/cancel").status_code == 409
