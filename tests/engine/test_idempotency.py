"""Runs with an idempotency key: one instance per (DAG, key), however many submit it."""

from __future__ import annotations

import asyncio

from tideflow import Engine, EngineSettings, InstanceStatus

from .dags import dag, task


async def test_concurrent_submissions_make_one_instance(db_url: str) -> None:
    engines = [Engine.from_url(db_url, settings=EngineSettings(node_id=f"n{i}", recover=False))
               for i in range(4)]
    for e in engines:
        await e.start()
    try:
        await engines[0].register_dag(dag("idem", task("a", "shell",
                                                       params={"cmd": ["true"]})))
        results = await asyncio.gather(*[
            engines[i % 4].run_dag("idem", idempotency_key="backup-2026-11-26")
            for i in range(20)
        ])
        assert len({r.id for r in results}) == 1
        listed = await engines[1].list_instances(dag_id="idem")
        assert len(listed) == 1
        # another key is another instance; the same key on a later day of retries is not
        other = await engines[2].run_dag("idem", idempotency_key="backup-2026-11-27")
        assert other.id != results[0].id
        again = await engines[3].run_dag("idem", idempotency_key="backup-2026-11-26", wait=10)
        assert again.id == results[0].id
        done = await engines[0].wait_for(results[0].id, timeout=10, settled=False)
        assert done.status == InstanceStatus.SUCCESS
    finally:
        for e in engines:
            await e.close()
