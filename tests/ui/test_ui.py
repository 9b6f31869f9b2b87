"""The web UI at /ui, in headless Chromium, over a real server with real runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.dags import APPROVAL_YAML, chain
from api.harness import REPO, ApiServer

FAILED_FILL = "rgb(198, 40, 40)"  # #c62828
SUCCESS_FILL = "rgb(46, 125, 50)"  # #2e7d32
# The screenshot in the docs is refreshed on request only, so that a test run leaves the
# checkout as it found it: TIDEFLOW_UPDATE_SCREENSHOTS=1 pytest tests/ui
SCREENSHOT = REPO / "docs" / "ui-instance.png"


def apply(client: httpx.Client, doc: dict[str, Any] | str) -> None:
    if isinstance(doc, str):
        r = client.post("/api/v1/dags", content=doc, headers={"Content-Type": "application/yaml"})
    else:
        r = client.post("/api/v1/dags", json=doc)
    assert r.status_code == 201, r.text


def run(client: httpx.Client, dag_id: str, **body: Any) -> dict[str, Any]:
    r = client.post(f"/api/v1/dags/{dag_id}/run", json={"wait": 30, **body})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def flaky_dag(dag_id: str, marker: Path) -> dict[str, Any]:
    """A small fan-out/fan-in whose ``deploy`` task fails while ``marker`` exists."""
    tasks: list[dict[str, Any]] = [
        {"id": "checkout", "actionName": "ok"},
        *({"id": f"build-{n}", "actionName": "ok", "dependOn": ["checkout"]}
          for n in ("api", "web", "worker")),
        {"id": "test", "actionName": "ok", "dependOn": ["build-api", "build-web", "build-worker"]},
        {"id": "deploy", "actionName": "shell", "dependOn": ["test"],
         "params": {"cmd": ["sh", "-c", 'echo "deploying {{env}}"; test ! -e "{{gate}}"']}},
        {"id": "notify", "actionName": "ok", "dependOn": ["deploy"]},
    ]
    return {"id": dag_id, "tasks": tasks, "vars": {
        "env": {"defaultValue": "staging"},
        "gate": {"defaultValue": str(marker), "secret": True},
    }}


def test_list_shows_finished_and_failed_runs(server: ApiServer, page: Any) -> None:
    with server.client() as c:
        apply(c, chain("ui-good", "ok", "ok"))
        apply(c, chain("ui-bad", "ok", "fail"))
        good = run(c, "ui-good", tags={"team": "ui"})
        bad = run(c, "ui-bad", tags={"team": "ui"})
    assert (good["status"], bad["status"]) == ("success", "failed")
    page.goto(f"{server.url}/ui/#/instances")
    page.locator(f'tr[data-instance-id="{good["id"]}"][data-status="success"]').wait_for()
    page.locator(f'tr[data-instance-id="{bad["id"]}"][data-status="failed"]').wait_for()
    assert page.locator('[data-count="failed"]').count() == 1
    # a status filter narrows the list
    page.select_option('select[name="status"]', "failed")
    page.locator(f'tr[data-instance-id="{good["id"]}"]').wait_for(state="detached")
    assert page.locator(f'tr[data-instance-id="{bad["id"]}"]').count() == 1


def test_failed_task_is_red_and_retry_makes_the_instance_succeed(
    server: ApiServer, page: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "fail-while-here"
    marker.write_text("x")
    with server.client() as c:
        apply(c, flaky_dag("ui-release", marker))
        inst = run(c, "ui-release", tags={"release": "1.4"})
    assert inst["status"] == "failed"
    page.goto(f"{server.url}/ui/#/instances/{inst['id']}")
    node = page.locator('g[data-task-id="deploy"]')
    node.and_(page.locator('[data-status="failed"]')).wait_for()
    fill = node.locator("rect").evaluate("el => getComputedStyle(el).fill")
    assert fill == FAILED_FILL
    ok_fill = page.locator('g[data-task-id="checkout"] rect').evaluate(
        "el => getComputedStyle(el).fill")
    assert ok_fill == SUCCESS_FILL
    assert page.locator("g.task").count() == 7
    node.click()
    page.locator("#task-params").filter(has_text="deploying staging").wait_for()
    assert "failed" in page.locator("#task-attempts").inner_text()
    shot = SCREENSHOT if os.environ.get("TIDEFLOW_UPDATE_SCREENSHOTS") else tmp_path / "ui.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000  # a page was drawn, not an empty frame

    marker.unlink()
    page.click("#task-retry")
    page.locator('#instance-status[data-status="success"]').wait_for(timeout=30_000)
    page.locator('g[data-task-id="deploy"][data-status="success"]').wait_for()
    page.locator('g[data-task-id="notify"][data-status="success"]').wait_for()
    assert "retry deploy" in page.locator("#message").inner_text()


def test_blocked_approval_is_continued_from_the_ui(server: ApiServer, page: Any) -> None:
    with server.client() as c:
        apply(c, APPROVAL_YAML.format(id="ui-approval"))
        inst = run(c, "ui-approval")
    assert inst["status"] == "blocked"
    page.goto(f"{server.url}/ui/#/instances/{inst['id']}")
    page.locator('g[data-task-id="approve"][data-status="blocked"]').click()
    # a command that does not fit the state shows the API's message
    page.click("#instance-pause")
    page.locator("#message.error").filter(has_text="cannot pause").wait_for()
    page.click("#task-continue")
    page.locator('#instance-status[data-status="success"]').wait_for(timeout=30_000)
    page.locator('g[data-task-id="apply"][data-status="success"]').wait_for()


def test_odd_task_ids_are_shown_and_continued_from_the_ui(server: ApiServer, page: Any) -> None:
    odd = "a b/c?d#e%f \"q\" 'x' é日本"
    with server.client() as c:
        apply(c, {"id": "ui-odd", "tasks": [
            {"id": "common -child", "actionName": "ok"},
            {"id": odd, "actionName": "approval", "dependOn": ["common -child"]},
            {"id": "after/it", "actionName": "ok", "dependOn": [odd]},
        ]})
        inst = run(c, "ui-odd")
    assert inst["status"] == "blocked"
    page.goto(f"{server.url}/ui/#/instances/{inst['id']}")
    selector = f"g[data-task-id={json.dumps(odd, ensure_ascii=False)}][data-status=blocked]"
    page.locator(selector).click()
    page.click("#task-continue")  # the task's URL is escaped: the API finds the task
    page.locator('#instance-status[data-status="success"]').wait_for(timeout=30_000)
    page.locator('g[data-task-id="after/it"][data-status="success"]').wait_for()


def test_dags_view_runs_a_dag_and_nodes_view_shows_the_leader(
    server: ApiServer, page: Any
) -> None:
    with server.client() as c:
        apply(c, {**chain("ui-cron", "ok"), "cron": "0 3 * * *",
                  "vars": {"who": {"defaultValue": "world"}}})
    page.goto(f"{server.url}/ui/#/dags")
    card = page.locator('.card[data-dag-id="ui-cron"]')
    card.filter(has_text="0 3 * * *").filter(has_text="next:").wait_for()
    definition = card.locator("pre.yaml").text_content() or ""
    assert "cron: 0 3 * * *" in definition or 'cron: "0 3 * * *"' in definition
    assert "actionName:" in definition and "- id:" in definition  # YAML, not JSON
    card.locator('input[name="var-who"]').fill("browser")
    card.locator('input[name="tags"]').fill("from=ui")
    card.locator('button[type="submit"]').click()
    page.wait_for_url("**/ui/#/instances/*")
    page.locator('#instance-status[data-status="success"]').wait_for()
    assert '"who":"browser"' in page.locator("#instance-head").inner_text()

    page.goto(f"{server.url}/ui/#/nodes")
    row = page.locator('tr[data-node-id="ui-node"]')
    row.filter(has_text="leader").wait_for()
    assert "shell" in row.inner_text()


def test_a_500_task_graph_renders(server: ApiServer, page: Any) -> None:
    tasks: list[dict[str, Any]] = []
    for layer in range(10):
        for n in range(50):
            task: dict[str, Any] = {"id": f"l{layer}-{n}", "actionName": "ok"}
            if layer:
                task["dependOn"] = [f"l{layer - 1}-{n}", f"l{layer - 1}-{(n + 1) % 50}"]
            tasks.append(task)
    with server.client() as c:
        apply(c, {"id": "ui-big", "tasks": tasks})
        inst = run(c, "ui-big", wait=0)
    page.goto(f"{server.url}/ui/#/instances/{inst['id']}")
    page.locator('#instance-status[data-status="success"]').wait_for(timeout=60_000)
    page.locator('g[data-task-id="l9-49"][data-status="success"]').wait_for()
    assert page.locator("g.task").count() == 500
    # columns by depth: the last layer is to the right of the first
    x0 = page.locator('g[data-task-id="l0-0"]').bounding_box()["x"]
    x9 = page.locator('g[data-task-id="l9-0"]').bounding_box()["x"]
    assert x9 > x0


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Any:
    tmp = tmp_path_factory.mktemp("ui-auth")
    srv = ApiServer(f"sqlite:///{tmp / 'auth.db'}", tmp, tokens=["s3cret-token"],
                    node_id="ui-auth-node").start()
    yield srv
    srv.stop()


def test_token_prompt(token_server: ApiServer, page: Any) -> None:
    with token_server.client("s3cret-token") as c:
        apply(c, chain("ui-authed", "ok"))
        inst = run(c, "ui-authed")
    page.goto(f"{token_server.url}/ui/#/instances")
    dialog = page.locator("#token-dialog")
    dialog.wait_for(state="visible")
    page.fill("#token-input", "wrong")
    page.click("#token-submit")
    page.locator("#token-error").filter(has_text="not accepted").wait_for()
    page.fill("#token-input", "s3cret-token")
    page.click("#token-submit")
    page.locator(f'tr[data-instance-id="{inst["id"]}"][data-status="success"]').wait_for()
    assert page.evaluate("sessionStorage.getItem('tideflow.token')") == "s3cret-token"


DECISION_YAML = """
id: {id}
tasks:
  - {{id: plan, actionName: ok}}
  - id: sign-off
    actionName: approval
    dependOn: [plan]
    params:
      message: Hand the cluster over?
      approvers: [alice, bob]
      inputs:
        ticket: {{type: string, required: true, pattern: "^T-[0-9]+$"}}
        size: {{type: integer, minimum: 1}}
        dry: {{type: boolean}}
  - {{id: apply, actionName: ok, dependOn: [sign-off]}}
"""


def test_continue_asks_for_the_approvals_inputs(server: ApiServer, page: Any) -> None:
    with server.client() as c:
        apply(c, DECISION_YAML.format(id="ui-decision"))
        inst = run(c, "ui-decision")
    assert inst["status"] == "blocked"
    page.goto(f"{server.url}/ui/#/instances/{inst['id']}")
    page.locator('g[data-task-id="sign-off"][data-status="blocked"]').wait_for()
    page.click("#instance-continue")
    page.locator("#decision").filter(has_text="Hand the cluster over?").wait_for()
    # a value that does not fit: the engine's message, and the form keeps what was typed
    page.fill("#input-ticket", "nope")
    page.select_option("#decision-by", "bob")
    page.click("#decision-continue")
    page.locator("#message.error").filter(has_text="must match the pattern").wait_for()
    assert page.input_value("#input-ticket") == "nope"
    page.fill("#input-ticket", "T-12")
    page.fill("#input-size", "4")
    page.select_option("#input-dry", "true")
    page.click("#decision-continue")
    page.locator('#instance-status[data-status="success"]').wait_for(timeout=30_000)
    with server.client() as c:
        done = c.get(f"/api/v1/dag-instances/{inst['id']}").json()
    sign = next(t for t in done["tasks"] if t["taskId"] == "sign-off")
    assert "approved by bob: ticket='T-12', size=4, dry=True" in [
        t["message"] for t in sign["traces"]]


def test_reject_from_the_ui(server: ApiServer, page: Any) -> None:
    with server.client() as c:
        apply(c, DECISION_YAML.format(id="ui-reject"))
        inst = run(c, "ui-reject")
    page.goto(f"{server.url}/ui/#/instances/{inst['id']}")
    page.locator('g[data-task-id="sign-off"][data-status="blocked"]').click()
    page.select_option("#decision-by", "alice")
    page.fill("#decision-reason", "wrong week")
    page.click("#decision-reject")
    page.locator('#instance-status[data-status="failed"]').wait_for(timeout=30_000)
    page.locator("#task-reason").filter(has_text="rejected by alice: wrong week").wait_for()


def test_a_compensated_run_shows_its_compensation(server: ApiServer, page: Any) -> None:
    with server.client() as c:
        apply(c, {"id": "ui-saga", "tasks": [
            {"id": "make", "actionName": "ok",
             "compensate": {"actionName": "ok"}},
            {"id": "break", "actionName": "fail", "dependOn": ["make"]}]})
        inst = run(c, "ui-saga")
    assert inst["status"] == "failed" and inst["compensation"] == "done"
    page.goto(f"{server.url}/ui/#/instances/{inst['id']}")
    page.locator('#instance-compensation[data-compensation="done"]').wait_for()
    page.locator('g[data-task-id="compensate:make"][data-status="success"]').wait_for()
