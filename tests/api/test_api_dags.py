"""/api/v1/dags over a real server: apply (YAML, JSON, wrapped text), validation errors, get,
run, delete; health routes and the error shape."""

from __future__ import annotations

import json

import httpx

from .dags import APPROVAL_YAML, chain

YAML = {"content-type": "application/yaml"}


def _error(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "message", "details"}
    assert "Traceback" not in resp.text
    return body  # type: ignore[no-any-return]


def test_apply_yaml_json_and_wrapped_text(client: httpx.Client) -> None:
    r = client.post("/api/v1/dags", content=APPROVAL_YAML.format(id="ap-yaml"), headers=YAML)
    assert r.status_code == 201, r.text
    dag = r.json()
    assert (dag["id"], dag["version"], dag["status"]) == ("ap-yaml", 1, "normal")
    assert [t["id"] for t in dag["definition"]["tasks"]] == ["plan", "approve", "apply"]

    r = client.post("/api/v1/dags", json=chain("ap-json", "ok", "ok"))
    assert r.status_code == 201 and r.json()["version"] == 1
    # applying a changed definition makes a new version
    r = client.post("/api/v1/dags", json={"definition": APPROVAL_YAML.format(id="ap-json")})
    assert r.status_code == 201 and r.json()["version"] == 2
    assert r.json()["unchanged"] is False
    # the same definition again (in any of the forms) stores nothing: 200 and the version
    for again in (
        client.post("/api/v1/dags", json={"definition": APPROVAL_YAML.format(id="ap-json")}),
        client.post("/api/v1/dags", content=APPROVAL_YAML.format(id="ap-json"), headers=YAML),
    ):
        assert again.status_code == 200, again.text
        assert (again.json()["version"], again.json()["unchanged"]) == (2, True)
    r = client.post("/api/v1/dags", content=APPROVAL_YAML.format(id="ap-text"),
                    headers={"content-type": "text/plain"})
    assert r.status_code == 201

    # a JSON body is read once, keeping the text of its numbers where text is wanted
    body = '{"id": "ap-num", "vars": {"v": {"defaultValue": 1.50}}, "tasks": [{"id": "a", ' \
           '"actionName": "ok", "params": {"n": 1.50}}]}'
    for sent in (body, '{"definition": ' + body + "}"):
        r = client.post("/api/v1/dags", content=sent, headers={"content-type": "application/json"})
        assert r.status_code in (200, 201), r.text
        assert r.json()["definition"]["vars"]["v"]["defaultValue"] == "1.50"
        assert r.json()["definition"]["tasks"][0]["params"] == {"n": 1.5}
    bad = _error(client.post("/api/v1/dags", content='{"id": 1,',
                             headers={"content-type": "application/json"}), 422)
    assert "is not valid JSON at line 1" in str(bad["message"])

    got = client.get("/api/v1/dags/ap-json").json()
    assert got["version"] == 2 and len(got["definition"]["tasks"]) == 3
    assert client.get("/api/v1/dags/ap-json", params={"version": 1}).json()["version"] == 1
    listed = {d["id"]: d for d in client.get("/api/v1/dags").json()["items"]}
    assert {"ap-yaml", "ap-json", "ap-text"} <= set(listed)
    # strings stay strings, also through the API; a secret var's default is not shown
    assert got["definition"]["vars"]["region"]["defaultValue"] == "eu"
    assert got["definition"]["vars"]["password"]["defaultValue"] == "***"


def test_apply_invalid_definitions_422_with_the_loaders_messages(client: httpx.Client) -> None:
    bad_dep = "id: bad1\ntasks:\n  - id: a\n    actionName: ok\n    dependOn: [nope]\n"
    body = _error(client.post("/api/v1/dags", content=bad_dep, headers=YAML), 422)
    assert body["error"] == "invalid_definition"
    assert "nope" in str(body["message"]) and "'a'" in str(body["message"])
    assert isinstance(body["details"], dict) and body["details"]["problems"]

    unknown = chain("bad2", "no-such-action")
    body = _error(client.post("/api/v1/dags", json=unknown), 422)
    assert "no-such-action" in str(body["message"])

    cycle = {"id": "bad3", "tasks": [
        {"id": "a", "actionName": "ok", "dependOn": ["b"]},
        {"id": "b", "actionName": "ok", "dependOn": ["a"]},
    ]}
    assert "cycle" in str(_error(client.post("/api/v1/dags", json=cycle), 422)["message"])

    body = _error(client.post("/api/v1/dags", content="id: [unclosed", headers=YAML), 422)
    assert "<api body>" in str(body["message"])
    body = _error(client.post("/api/v1/dags", content=b"{not json",
                              headers={"content-type": "application/json"}), 422)
    assert body["error"] == "invalid_definition"
    _error(client.post("/api/v1/dags", json={"definition": 3}), 422)
    body = _error(client.post("/api/v1/dags", content=b"x",
                              headers={"content-type": "image/png"}), 415)
    assert body["error"] == "unsupported_media_type"
    # nothing was stored
    assert client.get("/api/v1/dags/bad1").status_code == 404


def test_run_with_vars_tags_wait_and_idempotency(client: httpx.Client) -> None:
    client.post("/api/v1/dags", content=APPROVAL_YAML.format(id="runme"), headers=YAML)
    r = client.post("/api/v1/dags/runme/run",
                    json={"vars": {"region": "us", "password": "s3cret-pw"},
                          "tags": {"team": "infra"}, "wait": 10})
    assert r.status_code == 201, r.text
    inst = r.json()
    assert inst["status"] == "blocked"
    assert inst["vars"] == {"region": "us", "password": "***"}
    assert inst["tags"] == {"team": "infra"}
    assert "s3cret-pw" not in r.text
    for key in ("id", "dagId", "dagVersion", "reason", "trigger", "shareData", "selector",
                "worker", "createdAt", "updatedAt", "endedAt", "tasks"):
        assert key in inst

    # an empty value means the default, as on the command line
    empty = client.post("/api/v1/dags/runme/run", json={"vars": {"region": ""}}).json()
    assert empty["vars"]["region"] == "eu"

    first = client.post("/api/v1/dags/runme/run", json={"idempotencyKey": "k-1"}).json()
    again = client.post("/api/v1/dags/runme/run", json={"idempotencyKey": "k-1"}).json()
    assert first["id"] == again["id"]

    body = _error(client.post("/api/v1/dags/runme/run", json={"vars": {"regoin": "x"}}), 400)
    assert "regoin" in str(body["message"]) and "region" in str(body["message"])
    _error(client.post("/api/v1/dags/runme/run", json={"vars": {"region": None}}), 400)
    _error(client.post("/api/v1/dags/runme/run", json={"wait": -1}), 400)
    _error(client.post("/api/v1/dags/runme/run", json={"unknown": 1}), 400)
    _error(client.post("/api/v1/dags/runme/run", content=b"[1,",
                       headers={"content-type": "application/json"}), 400)
    assert _error(client.post("/api/v1/dags/nope/run", json={}), 404)["error"] == "not_found"


def test_stopped_dag_refuses_to_run_409(client: httpx.Client) -> None:
    client.post("/api/v1/dags", json=chain("stopped", "ok", status="stopped"))
    body = _error(client.post("/api/v1/dags/stopped/run", json={}), 409)
    assert body["details"] == {"state": "stopped"}
    assert "stopped" in str(body["message"])


def test_delete_refused_while_unfinished_then_forced(client: httpx.Client) -> None:
    client.post("/api/v1/dags", content=APPROVAL_YAML.format(id="del"), headers=YAML)
    inst = client.post("/api/v1/dags/del/run", json={"wait": 10}).json()
    assert inst["status"] == "blocked"
    body = _error(client.delete("/api/v1/dags/del"), 409)
    assert "unfinished" in str(body["message"])
    assert client.delete("/api/v1/dags/del", params={"force": "true"}).status_code == 204
    _error(client.get("/api/v1/dags/del"), 404)
    _error(client.delete("/api/v1/dags/del"), 404)
    # the instance is history and can still be read
    assert client.get(f"/api/v1/dag-instances/{inst['id']}").status_code == 200


def test_health_and_error_shape(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    assert _error(client.get("/api/v1/nothing-here"), 404)["error"] == "not_found"
    assert _error(client.put("/api/v1/dags"), 405)["error"] == "method_not_allowed"
    doc = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/dag-instances/{instance_id}/tasks/{task_id}/retry" in doc["paths"]
    assert client.get("/api/v1/docs").status_code == 200


def test_body_too_large_413(client: httpx.Client) -> None:
    big = "id: big\ndesc: " + "x" * 100_000 + "\ntasks:\n  - {id: a, actionName: ok}\n"
    body = _error(client.post("/api/v1/dags", content=big, headers=YAML), 413)
    assert body["error"] == "body_too_large"

    def chunks():  # no Content-Length: the limit holds while streaming too
        for _ in range(20):
            yield b"x" * 8192

    _error(client.post("/api/v1/dags", content=chunks(), headers=YAML), 413)
    _error(client.post("/api/v1/dags/x/run", content=json.dumps({"tags": {
        f"k{n}": "v" * 200 for n in range(400)}}), headers={"content-type": "application/json"}),
        413)


TYPED_YAML = """
id: typed
vars:
  clusterName: {type: string, required: true, pattern: "^[a-z][a-z0-9-]{2,30}$"}
  size: {type: integer, defaultValue: "3", minimum: 1, maximum: 50}
  regions: {type: list, defaultValue: '["eu-west-1"]'}
tasks:
  - {id: a, actionName: ok}
"""


def test_typed_vars_over_the_api(client: httpx.Client) -> None:
    r = client.post("/api/v1/dags", content=TYPED_YAML, headers=YAML)
    assert r.status_code == 201, r.text
    shown = r.json()["definition"]["vars"]
    assert shown["size"] == {"desc": "", "defaultValue": 3, "secret": False, "type": "integer",
                             "minimum": 1, "maximum": 50}
    assert shown["clusterName"]["required"] is True

    body = _error(client.post("/api/v1/dags/typed/run", json={"vars": {"size": 5}}), 422)
    assert body["error"] == "invalid_vars"
    assert "run var 'clusterName' is required" in str(body["message"])
    body = _error(client.post("/api/v1/dags/typed/run",
                              json={"vars": {"clusterName": "blue", "size": "x"}}), 422)
    assert "run var 'size' must be a whole number (type: integer)" in str(body["message"])
    body = _error(client.post("/api/v1/dags/typed/run",
                              json={"vars": {"clusterName": "blue", "size": 500}}), 422)
    assert body["details"] == {"problems": ["run var 'size' must be at most 50 (maximum);"
                                            " got 500"]}
    assert client.get("/api/v1/dag-instances", params={"dagId": "typed"}).json()["items"] == []

    r = client.post("/api/v1/dags/typed/run", json={"vars": {
        "clusterName": "blue", "size": "7", "regions": ["a", "b"]}, "wait": 10})
    assert r.status_code == 201, r.text
    assert r.json()["vars"] == {"clusterName": "blue", "size": 7, "regions": ["a", "b"]}
    # every task carries its output (null: the action returned nothing)
    assert [t["output"] for t in r.json()["tasks"]] == [None]


def test_pause_and_resume_routes(client: httpx.Client) -> None:
    c = client
    body = {"id": "nightly-p", "cron": "0 2 * * *", "tasks": [{"id": "a", "actionName": "ok"}]}
    assert c.post("/api/v1/dags", json=body).status_code == 201
    paused = c.post("/api/v1/dags/nightly-p/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["nextFireTimes"] == []
    assert paused.json()["version"] == 1  # no new version
    listed = {d["id"]: d for d in c.get("/api/v1/dags").json()["items"]}
    assert listed["nightly-p"]["paused"] is True
    assert c.get("/api/v1/dags/nightly-p").json()["paused"] is True
    # a manual run of a paused DAG still works
    run = c.post("/api/v1/dags/nightly-p/run", json={"wait": 10})
    assert run.status_code == 201 and run.json()["status"] == "success"
    resumed = c.post("/api/v1/dags/nightly-p/resume").json()
    assert resumed["paused"] is False and len(resumed["nextFireTimes"]) == 5
    assert _error(c.post("/api/v1/dags/ghost/pause"), 404)["error"] == "not_found"
    doc = c.get("/api/v1/openapi.json").json()["paths"]
    assert "post" in doc["/api/v1/dags/{dag_id}/pause"]
    assert "post" in doc["/api/v1/dags/{dag_id}/resume"]
