"""deploy/: the Kubernetes manifests parse and are wired as documented (node id from POD_NAME,
database URL from the Secret, DAGs from the ConfigMap, the real CLI's options), and the
Dockerfile builds from files that exist. No cluster or Docker engine is needed."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from tideflow.actions.base import ActionRegistry
from tideflow.actions.builtin import register_builtins
from tideflow.cli.main import app
from tideflow.definition.loader import load_dag_text
from tideflow.definition.validate import validate_dag
from tideflow.store.url import parse_url

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
LABELS = {"app.kubernetes.io/name": "tideflow"}


def _docs(name: str) -> list[dict[str, Any]]:
    with open(DEPLOY / "k8s" / name, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(d), d
        assert d["metadata"]["labels"].items() >= LABELS.items(), d["metadata"]
    return docs


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    docs = _docs("statefulset.yaml")
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert len(by_key) == len(docs), "two documents with one kind and name"
    return by_key


@pytest.fixture(scope="module")
def secrets() -> dict[str, dict[str, Any]]:
    docs = _docs("secret.example.yaml")
    assert [d["kind"] for d in docs] == ["Secret", "Secret"]
    return {d["metadata"]["name"]: d for d in docs}


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def _parse_cli(args: list[str]) -> dict[str, Any]:
    """Parse a container's args with the real ``tideflow`` command, without running it."""
    # typer may bring its own copy of click: use the command it builds, not click's types
    group: Any = typer.main.get_command(app)
    assert args[0] == "server"
    server = group.get_command(group.make_context("tideflow", ["server"]), "server")
    ctx = server.make_context("server", list(args[1:]))
    return dict(ctx.params)


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    # the selector must pick the pods this workload makes
    assert spec["template"]["metadata"]["labels"].items() >= (
        spec["selector"]["matchLabels"].items())
    pod: dict[str, Any] = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    return pod


def test_kinds(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert sorted(manifests) == [
        ("ConfigMap", "tideflow-dags"),
        ("Deployment", "tideflow-watcher"),
        ("PodDisruptionBudget", "tideflow-worker"),
        ("Service", "tideflow-api"),
        ("Service", "tideflow-workers"),
        ("StatefulSet", "tideflow-worker"),
    ]


def test_workers(
    manifests: dict[tuple[str, str], dict[str, Any]], secrets: dict[str, dict[str, Any]]
) -> None:
    sts = manifests[("StatefulSet", "tideflow-worker")]
    assert sts["spec"]["replicas"] == 3
    headless = manifests[("Service", sts["spec"]["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    pod = _pod(sts)
    assert pod["terminationGracePeriodSeconds"] >= 10
    (container,) = pod["containers"]
    assert container["resources"]["requests"].keys() >= {"cpu", "memory"}

    env = _env(container)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    ref = env["TIDEFLOW_DB"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] in secrets[ref["name"]]["stringData"]

    params = _parse_cli(container["args"])
    assert params["role"] == "worker"
    # no --node-id and no --db: the node id is POD_NAME's, the URL TIDEFLOW_DB's
    assert params["node_id"] is None
    assert "--db" not in container["args"]

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert str(params["dags"]) in mounts
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(params["dags"])])
    assert ("ConfigMap", volume["configMap"]["name"]) in manifests


def test_configmap_dags_are_valid(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    builtin = ActionRegistry()
    register_builtins(builtin)
    data = manifests[("ConfigMap", "tideflow-dags")]["data"]
    assert data
    for name, text in data.items():
        assert name.endswith((".yaml", ".yml", ".json"))
        validate_dag(load_dag_text(text), source=name, known_actions=builtin.names())


def test_watcher(
    manifests: dict[tuple[str, str], dict[str, Any]], secrets: dict[str, dict[str, Any]]
) -> None:
    pod = _pod(manifests[("Deployment", "tideflow-watcher")])
    (container,) = pod["containers"]
    params = _parse_cli(container["args"])
    assert params["role"] == "watcher"
    host, _, port = params["http"].rpartition(":")
    assert host == "0.0.0.0"
    env = _env(container)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for var in ("TIDEFLOW_DB", params["token_env"]):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["stringData"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(port)
    for probe in ("readinessProbe", "livenessProbe"):
        # the one route open without a token
        assert container[probe]["httpGet"]["path"] == "/healthz"
    api = manifests[("Service", "tideflow-api")]
    assert api["spec"]["selector"] == (
        manifests[("Deployment", "tideflow-watcher")]["spec"]["selector"]["matchLabels"])


def test_secret_placeholders(secrets: dict[str, dict[str, Any]]) -> None:
    url = secrets["tideflow-db"]["stringData"]["url"]
    assert "CHANGE-ME" in url
    assert parse_url(url).backend == "mysql"
    assert "CHANGE-ME" in secrets["tideflow-api"]["stringData"]["tokens"]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile() -> None:
    steps = _instructions(DEPLOY / "Dockerfile")
    froms = [a for k, a in steps if k == "FROM"]
    assert froms and all(a.split()[0] == "python:3.11-slim" for a in froms)
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM"):]
    assert dict(final)["ENTRYPOINT"] == '["tideflow"]'
    assert dict(final)["CMD"] == '["server"]'
    user = [a for k, a in final if k == "USER"]
    assert user and user[-1] not in ("root", "0")

    # what it copies exists, and the Dockerfile's ignore file lets it through
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for k, a in steps:
        if k == "COPY" and not a.startswith("--from"):
            for src in shlex.split(a)[:-1]:
                assert (REPO / src).exists(), src
                assert f"!{src.rstrip('/')}" in ignore.replace("/\n", "\n"), src

    # the extras it installs are the package's, and so is the entry point
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (extras,) = re.findall(r'"\.\[([a-z,]+)\]"', " ".join(a for _, a in steps))
    assert {"mysql", "postgres"} <= set(extras.split(","))
    assert set(extras.split(",")) <= set(project["optional-dependencies"])
    assert "tideflow" in project["scripts"]
