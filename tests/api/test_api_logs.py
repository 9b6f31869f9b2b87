"""Task logs over HTTP: pages by cursor, and following live as Server-Sent Events (also through
``tideflow ins logs --server``)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx

from .harness import ApiServer

_SLOW = "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done"


def _run(client: httpx.Client, dag_id: str, cmd: str, wait: float | None) -> dict[str, Any]:
    dag = {"id": dag_id, "tasks": [
        {"id": "say", "actionName": "shell", "params": {"cmd": cmd, "shell": True}}]}
    assert client.post("/api/v1/dags", json=dag).status_code in (200, 201)
    body = {"wait": wait} if wait else {}
    inst: dict[str, Any] = client.post(f"/api/v1/dags/{dag_id}/run", json=body).json()
    return inst


def test_pages_by_cursor(client: httpx.Client) -> None:
    inst = _run(client, "log-pages", "seq 1 3000", 30)
    assert inst["status"] == "success"
    base = f"/api/v1/dag-instances/{inst['id']}"
    got: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        page = client.get(f"{base}/tasks/say/logs", params=params).json()
        got += [x["text"] for x in page["lines"] if x["stream"] == "stdout"]
        after = page["cursor"]
        if not page["more"]:
            break
    assert got == [str(i) for i in range(1, 3001)]
    tail = client.get(f"{base}/logs", params={"tail": 2}).json()["lines"]
    assert [x["text"] for x in tail] == ["3000", "attempt 1 succeeded"]
    assert set(tail[0]) == {"cursor", "taskId", "attempt", "time", "stream", "level", "text"}
    assert client.get(f"{base}/tasks/nope/logs").status_code == 404
    assert client.get("/api/v1/dag-instances/nope/logs").status_code == 404
    assert client.get(f"{base}/tasks/say/logs", params={"attempt": 0}).status_code == 400
    # the same routes under /instances
    short = client.get(f"/api/v1/instances/{inst['id']}/tasks/say/logs", params={"tail": 2})
    assert [x["text"] for x in short.json()["lines"]] == ["3000", "attempt 1 succeeded"]
    assert client.get("/api/v1/instances/nope/logs").status_code == 404


def test_follow_as_server_sent_events(client: httpx.Client) -> None:
    inst = _run(client, "log-follow", _SLOW, None)
    url = f"/api/v1/dag-instances/{inst['id']}/tasks/say/logs"
    events: list[tuple[str, str]] = []
    with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        kind = "message"
        for line in resp.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                events.append((kind, line[5:].strip()))
                kind = "message"
    assert events[-1] == ("end", "{}")
    texts = [json.loads(d)["text"] for k, d in events if k == "message"]
    assert [t for t in texts if t.startswith("tick")] == [f"tick {i}" for i in range(1, 6)]
    assert texts[-1] == "attempt 1 succeeded"


def test_cli_follows_through_the_server(server: ApiServer, client: httpx.Client) -> None:
    inst = _run(client, "log-cli", _SLOW, None)
    out = subprocess.run(
        [sys.executable, "-m", "tideflow.cli.main", "ins", "logs", inst["id"], "say", "-f",
         "--server", server.url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [x.split(" ", 3)[3] for x in lines if " stdout " in x] == [
        f"tick {i}" for i in range(1, 6)]
    assert lines[-1].endswith("say#1 engine attempt 1 succeeded")
    # a page through the server, as JSON lines
    out = subprocess.run(
        [sys.executable, "-m", "tideflow.cli.main", "ins", "logs", inst["id"], "--tail", "1",
         "--json", "--server", server.url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["text"] == "attempt 1 succeeded"


def _events(client: httpx.Client, url: str, headers: dict[str, str]
            ) -> list[tuple[str, dict[str, Any]]]:
    """(id, data) of each line event of a followed log."""
    out: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", url, params={"follow": "true"}, headers=headers) as resp:
        assert resp.status_code == 200
        event_id = ""
        for line in resp.iter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:") and event_id:
                out.append((event_id, json.loads(line[5:])))
                event_id = ""
    return out


def test_reconnect_resumes_inside_a_chunk(client: httpx.Client) -> None:
    inst = _run(client, "log-resume", "seq 1 3000", 30)
    url = f"/api/v1/dag-instances/{inst['id']}/tasks/say/logs"
    first = _events(client, url, {})
    texts = [d["text"] for _, d in first]
    assert texts[1:3001] == [str(i) for i in range(1, 3001)]
    ids = [i for i, _ in first]
    assert len(set(ids)) == len(ids), "each line has its own event id"
    # the lines share chunks: a reconnect after line 1500 goes on with 1501, not the next chunk
    mid = texts.index("1500")
    assert first[mid][1]["cursor"] == first[mid + 1][1]["cursor"]
    again = _events(client, url, {"Last-Event-ID": ids[mid]})
    assert [d["text"] for _, d in again] == texts[mid + 1:]


def test_out_of_range_numbers_are_bad_requests(server: ApiServer, client: httpx.Client
                                               ) -> None:
    inst = _run(client, "log-range", "echo hi", 30)
    url = f"/api/v1/dag-instances/{inst['id']}/tasks/say/logs"
    huge = "99999999999999999999999"
    for params in ({"after": huge}, {"attempt": huge}, {"after": huge, "follow": "true"},
                   {"attempt": 2**31}, {"after": 2**63}):
        resp = client.get(url, params=params)
        assert resp.status_code == 400, (params, resp.status_code, resp.text)
    resp = client.get(url, params={"follow": "true"}, headers={"Last-Event-ID": huge + ":1"})
    assert resp.status_code == 400, resp.text
    # the largest values are fine: nothing after them
    page = client.get(url, params={"after": 2**63 - 1, "attempt": 2**31 - 1}).json()
    assert page["lines"] == []
    out = subprocess.run(
        [sys.executable, "-m", "tideflow.cli.main", "ins", "logs", inst["id"], "say",
         "--attempt", huge, "--server", server.url], capture_output=True, text=True,
        timeout=60)
    assert out.returncode == 2 and "--attempt" in out.stderr and "Traceback" not in out.stderr


def test_dot_task_ids_stay_literal_through_the_client(server: ApiServer,
                                                      client: httpx.Client) -> None:
    # "." and ".." as path segments would be normalised away: the client escapes them
    dag = {"id": "log-dots", "tasks": [
        {"id": tid, "actionName": "shell", "params": {"cmd": ["echo", f"I am {tid}"]}}
        for tid in (".", "..", "...")]}
    assert client.post("/api/v1/dags", json=dag).status_code in (200, 201)
    inst = client.post("/api/v1/dags/log-dots/run", json={"wait": 30}).json()
    assert inst["status"] == "success", inst
    for tid in (".", "..", "..."):
        out = subprocess.run(
            [sys.executable, "-m", "tideflow.cli.main", "ins", "logs", inst["id"], tid,
             "--json", "--server", server.url], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        lines = [json.loads(x) for x in out.stdout.splitlines()]
        assert {x["taskId"] for x in lines} == {tid}, (tid, lines)
        assert f"I am {tid}" in [x["text"] for x in lines]
