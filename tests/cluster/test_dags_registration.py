"""``--dags`` on several real server processes started at once: one version per unchanged file,
sub-folders walked, hidden entries and empty files left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from tideflow.errors import NotFoundError

from .harness import Cluster, wait_until

pytestmark = pytest.mark.cluster

DAG = "tasks:\n  - {{id: a, actionName: shell, params: {{cmd: [echo, {word}]}}}}\n"


def _folder(tmp: Path) -> Path:
    dags = tmp / "dags"
    (dags / "team-a" / "nested").mkdir(parents=True)
    (dags / "..2026_01_01").mkdir()  # a ConfigMap volume's hidden copy: never read
    for i in range(4):
        (dags / f"top-{i}.yaml").write_text(DAG.format(word=i))
    (dags / "team-a" / "sub.yml").write_text(DAG.format(word="sub"))
    (dags / "team-a" / "nested" / "deep.json").write_text(
        '{"tasks": [{"id": "a", "actionName": "shell", "params": {"cmd": ["true"]}}]}')
    (dags / "team-a" / "empty.yaml").write_text("")
    (dags / "team-a" / "commented.yaml").write_text("# switched off for now\n\n")
    (dags / "..2026_01_01" / "top-0.yaml").write_text(DAG.format(word="hidden"))
    (dags / "notes.txt").write_text("not a definition")
    return dags


async def _start_all(cluster: Cluster, dags: Path, round_: int) -> None:
    ids = [f"w{i}-{round_}" for i in range(3)] + [f"watch-{round_}"]
    for node in ids:
        role = "watcher" if node.startswith("watch") else "worker"
        cluster.start(node, role, "--dags", str(dags))

    async def all_running() -> bool:
        return all(f"node {n} running" in cluster.log_text(n) for n in ids)

    await wait_until(all_running, 90, "every node to register its DAGs and run")
    cluster.stop_all()
    cluster.procs.clear()


async def test_nodes_started_together_make_one_version_per_file(
    server_url: str, tmp_path: Path
) -> None:
    dags = _folder(tmp_path)
    cluster = Cluster(server_url, tmp_path)
    names = ["top-0", "top-1", "top-2", "top-3", "sub", "deep"]
    try:
        await _start_all(cluster, dags, 1)
        async with cluster.client() as client:
            listed = {d.id: d for d in await client.list_dags()}
            assert sorted(listed) == sorted(names)
            assert {d.version for d in listed.values()} == {1}
            assert listed["top-0"].definition.tasks[0].params == {"cmd": ["echo", 0]}
            for name in names:
                with pytest.raises(NotFoundError):
                    await client.get_dag(name, 2)
        assert "empty.yaml is empty" in cluster.log_text("w0-1")
        assert "commented.yaml is empty" in cluster.log_text("w0-1")

        # started together again, one file changed: that one DAG gets exactly one new version
        (dags / "top-1.yaml").write_text(DAG.format(word="changed"))
        await _start_all(cluster, dags, 2)
        async with cluster.client() as client:
            versions = {d.id: d.version for d in await client.list_dags()}
        assert versions == {**dict.fromkeys(names, 1), "top-1": 2}
    finally:
        cluster.stop_all()


async def test_two_files_for_one_dag_id_stop_the_node(server_url: str, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    (dags / "a").mkdir(parents=True)
    (dags / "b").mkdir()
    (dags / "a" / "same.yaml").write_text(DAG.format(word="a"))
    (dags / "b" / "same.yaml").write_text(DAG.format(word="b"))
    cluster = Cluster(server_url, tmp_path)
    try:
        proc = cluster.start("w", "worker", "--dags", str(dags))
        assert proc.wait(60) == 2
        text = cluster.log_text("w")
        assert "both define DAG 'same'" in text and "give each DAG one file" in text
        async with cluster.client() as client:
            assert await client.list_dags() == []
    finally:
        cluster.stop_all()
