"""Task logs: every line of an attempt stored in order, capped, masked, and gone with its
instance, on each backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from tideflow import ActionRegistry, Engine, EngineSettings, load_dag_dict
from tideflow.actions.tasklog import TaskLogger
from tideflow.errors import InputError, NotFoundError
from tideflow.store import Fault, FaultPlan, FaultyStore
from tideflow.store.url import make_store

LINES = 100_000


def _dag(dag_id: str, *tasks: dict[str, Any], **extra: Any) -> Any:
    return load_dag_dict({"id": dag_id, "tasks": list(tasks), **extra})


async def test_shell_lines_stored_in_order(make_engine: Callable[..., Engine],
                                           db_url: str) -> None:
    async with make_engine(db_url) as eng:
        await eng.register_dag(_dag("many", {
            "id": "print", "actionName": "shell",
            "params": {"cmd": f"seq 1 {LINES}; echo done >&2", "shell": True}}))
        inst = await eng.run_dag("many", wait=60)
        assert inst.status == "success", inst.reason
        lines = []
        cursor = None
        while True:  # read back page by page, as a client does
            page = await eng.task_logs(inst.id, "print", after=cursor, limit=30_000)
            lines += page.lines
            cursor = page.cursor
            if not page.more:
                break
    out = [x.text for x in lines if x.stream == "stdout"]
    assert out == [str(i) for i in range(1, LINES + 1)]
    assert [x.text for x in lines if x.stream == "stderr"] == ["done"]
    engine_lines = [x.text for x in lines if x.stream == "engine"]
    assert engine_lines[0].startswith("attempt 1 started on test-node")
    assert engine_lines[-1] == "attempt 1 succeeded"
    assert lines[-1].text == "attempt 1 succeeded"
    # several chunks (batches), each line carrying its chunk's cursor, in order
    cursors = [x.cursor for x in lines]
    assert cursors == sorted(cursors) and len(set(cursors)) > 1
    tail = await _tail(make_engine, db_url, inst.id)
    assert [x.text for x in tail] == [str(LINES - 1), str(LINES), "done",
                                      "attempt 1 succeeded"][-len(tail):]


async def _tail(make_engine: Callable[..., Engine], url: str, iid: str) -> list[Any]:
    # another engine (as another process would) reads what the first one wrote
    async with make_engine(url, recover=False, node_id="reader") as eng:
        page = await eng.task_logs(iid, "print", tail=4)
        return page.lines


async def test_cap_keeps_the_attempt_under_its_limit(make_engine: Callable[..., Engine]
                                                     ) -> None:
    cap = 64 * 1024
    async with make_engine(task_log_max_bytes=cap) as eng:
        await eng.register_dag(_dag("capped", {
            "id": "print", "actionName": "shell",
            "params": {"cmd": f"seq 1 {LINES}", "shell": True}}))
        inst = await eng.run_dag("capped", wait=60)
        assert inst.status == "success", inst.reason
        page = await eng.task_logs(inst.id, "print", limit=100_000)
    texts = [x.text for x in page.lines]
    marker = [i for i, x in enumerate(page.lines) if x.text.startswith("log truncated")]
    assert len(marker) == 1, texts[-5:]
    assert "64 KiB (task_log_max_bytes)" in texts[marker[0]]
    kept = [x.text for x in page.lines if x.stream == "stdout"]
    assert kept == [str(i) for i in range(1, len(kept) + 1)]  # the first lines, in order
    assert sum(len(t) for t in texts) < cap
    assert len(kept) > 1000
    # the engine's last line still goes in after the cut
    assert texts[-1] == "attempt 1 succeeded"


async def test_python_actions_log_with_ctx_log(make_engine: Callable[..., Engine]) -> None:
    reg = ActionRegistry()

    @reg.action("greet")
    def greet(ctx: Any, params: Any) -> None:
        ctx.log.info("hello %s, %d", ctx.vars["who"], 3)
        ctx.log.debug("detail")
        ctx.log.warning("careful")
        try:
            raise ValueError("bad thing")
        except ValueError:
            ctx.log.exception("caught")

    async with make_engine(registry=reg) as eng:
        await eng.register_dag(_dag("greet", {"id": "g", "actionName": "greet"},
                                    vars={"who": {"defaultValue": "ann"}}))
        inst = await eng.run_dag("greet", wait=30)
        assert inst.status == "success", inst.reason
        page = await eng.task_logs(inst.id, "g")
    logged = [(x.level, x.text.splitlines()[0]) for x in page.lines if x.stream == "log"]
    assert logged == [("INFO", "hello ann, 3"), ("DEBUG", "detail"), ("WARNING", "careful"),
                      ("ERROR", "caught")]
    caught = next(x for x in page.lines if x.text.startswith("caught"))
    assert "ValueError: bad thing" in caught.text and "Traceback" in caught.text


async def test_secrets_are_masked(make_engine: Callable[..., Engine]) -> None:
    reg = ActionRegistry()

    @reg.action("leak")
    async def leak(ctx: Any, params: Any) -> None:
        ctx.log.info("token is %s", ctx.vars["token"])

    async with make_engine(registry=reg) as eng:
        await eng.register_dag(_dag(
            "secretive",
            {"id": "sh", "actionName": "shell",
             "params": {"cmd": ["sh", "-c", "echo out $0; echo err $0 >&2", "{{token}}"]}},
            {"id": "py", "actionName": "leak"},
            vars={"token": {"defaultValue": "", "secret": True}}))
        inst = await eng.run_dag("secretive", vars={"token": "s3cr3t-XYZ"}, wait=30)
        assert inst.status == "success", inst.reason
        page = await eng.task_logs(inst.id)
    texts = [x.text for x in page.lines]
    assert "out ***" in texts and "err ***" in texts and "token is ***" in texts
    assert not any("s3cr3t" in t for t in texts)
    assert {x.task_id for x in page.lines} == {"sh", "py"}


PEM = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----"


async def test_multi_line_secrets_are_masked_line_by_line(
        make_engine: Callable[..., Engine]) -> None:
    # logs are stored a line at a time: each line of the key is masked on its own
    async with make_engine() as eng:
        await eng.register_dag(_dag(
            "pem",
            {"id": "out", "actionName": "shell",
             "params": {"cmd": "printf '%s\\n' \"{{key}}\"; printf '%s\\n' \"{{key}}\" >&2",
                        "shell": True}},
            vars={"key": {"defaultValue": "", "secret": True}}))
        inst = await eng.run_dag("pem", vars={"key": PEM}, wait=30)
        assert inst.status == "success", inst.reason
        page = await eng.task_logs(inst.id, "out")
    shown = [(x.stream, x.text) for x in page.lines if x.stream != "engine"]
    assert shown == [("stdout", "***")] * 4 + [("stderr", "***")] * 4, shown


async def test_a_secret_at_a_long_lines_split_is_masked(
        make_engine: Callable[..., Engine]) -> None:
    # the secret ends past the 64 KiB at which a long line is split: masked before the split
    async with make_engine() as eng:
        await eng.register_dag(_dag(
            "split",
            {"id": "out", "actionName": "shell",
             # the line's end comes later: 64 KiB and more of it wait without a newline
             "params": {"cmd": "head -c 65530 /dev/zero | tr '\\0' a; printf %s \"{{key}}\"; "
                               "sleep 0.3; echo", "shell": True}},
            vars={"key": {"defaultValue": "", "secret": True}}))
        inst = await eng.run_dag("split", vars={"key": "s3cr3t-XYZ"}, wait=30)
        assert inst.status == "success", inst.reason
        page = await eng.task_logs(inst.id, "out")
    assert [x.text for x in page.lines if x.stream == "stdout"] == ["a" * 65530 + "***"]


async def test_engine_lines_of_retries_and_timeouts(make_engine: Callable[..., Engine]
                                                    ) -> None:
    async with make_engine() as eng:
        await eng.register_dag(_dag("slow", {
            "id": "nap", "actionName": "shell", "timeoutSecs": 1,
            "retry": {"maxAttempts": 2, "backoffSecs": 0.05},
            "params": {"cmd": "echo going; sleep 10", "shell": True}}))
        inst = await eng.run_dag("slow", wait=30)
        assert inst.status == "failed"
        first = await eng.task_logs(inst.id, "nap", attempt=1)
        second = await eng.task_logs(inst.id, "nap", attempt=2)
        every = await eng.task_logs(inst.id, "nap")
    one = [(x.stream, x.text) for x in first.lines]
    assert one[0][1].startswith("attempt 1 started")
    assert ("stdout", "going") in one
    assert ("engine", "attempt 1 failed: timed out after 1s") in one
    assert one[-1][0] == "engine" and one[-1][1].startswith("retrying in ")
    assert "attempt 2 of 2 next" in one[-1][1]
    assert {x.attempt for x in second.lines} == {2}
    assert second.lines[-1].text == "attempt 2 failed: timed out after 1s"
    assert len(every.lines) == len(first.lines) + len(second.lines)


async def test_cancel_is_logged(make_engine: Callable[..., Engine]) -> None:
    async with make_engine() as eng:
        await eng.register_dag(_dag("stop", {
            "id": "nap", "actionName": "shell", "params": {"cmd": ["sleep", "30"]}}))
        inst = await eng.run_dag("stop")
        await eng.wait_for(inst.id, timeout=0.5)
        await eng.cancel(inst.id, wait=10)
        page = await eng.task_logs(inst.id, "nap")
    assert page.lines[-1].text.startswith("attempt 1 canceled")


async def test_bad_reads_are_refused(make_engine: Callable[..., Engine]) -> None:
    async with make_engine() as eng:
        await eng.register_dag(_dag("one", {"id": "a", "actionName": "shell",
                                            "params": {"cmd": ["true"]}}))
        inst = await eng.run_dag("one", wait=30)
        with pytest.raises(NotFoundError, match="has no task 'nope'"):
            await eng.task_logs(inst.id, "nope")
        with pytest.raises(NotFoundError):
            await eng.task_logs("no-such-instance")
        with pytest.raises(InputError, match="attempt must be between 1 and 2147483647"):
            await eng.task_logs(inst.id, "a", attempt=0)
        with pytest.raises(InputError, match="attempt must be between"):
            await eng.task_logs(inst.id, "a", attempt=2**31)
        with pytest.raises(InputError, match="after must be a cursor"):
            await eng.task_logs(inst.id, after=2**63)
        with pytest.raises(InputError, match="limit"):
            await eng.task_logs(inst.id, limit=0)
        # following a task that is over returns its lines and ends
        lines = [x.text async for x in eng.follow_task_logs(inst.id, "a")]
        assert lines[-1] == "attempt 1 succeeded"


def test_bad_cap_is_refused(make_engine: Callable[..., Engine]) -> None:
    with pytest.raises(InputError, match="task_log_max_bytes"):
        make_engine(task_log_max_bytes=10)


async def test_logs_go_with_their_instance(make_engine: Callable[..., Engine],
                                           db_url: str) -> None:
    async with make_engine(db_url) as eng:
        await eng.register_dag(_dag("gone", {"id": "a", "actionName": "shell",
                                             "params": {"cmd": ["echo", "hi"]}}))
        inst = await eng.run_dag("gone", wait=30)
        keep = await eng.run_dag("gone", wait=30)
        store: Any = eng.store
        t = store.tables
        async with store.engine.begin() as conn:
            await conn.execute(t.instances.delete().where(t.instances.c.id == inst.id))
        async with store.engine.connect() as conn:
            left = (await conn.execute(sa.select(t.task_logs.c.instance_id))).scalars().all()
    assert set(left) == {keep.id}


async def test_logs_off_keeps_nothing(make_engine: Callable[..., Engine]) -> None:
    async with make_engine(task_logs=False) as eng:
        await eng.register_dag(_dag("quiet", {"id": "a", "actionName": "shell",
                                              "params": {"cmd": ["echo", "hi"]}}))
        inst = await eng.run_dag("quiet", wait=30)
        assert (await eng.task_logs(inst.id)).lines == []


def test_ctx_log_outside_an_engine_goes_to_logging(caplog: pytest.LogCaptureFixture) -> None:
    logger = TaskLogger()
    with caplog.at_level(logging.DEBUG, logger="tideflow.task"):
        logger.info("x=%d", 5)
        logger.error("plain")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "x=5"), ("ERROR", "plain")]
    got: list[tuple[str, str, str | None]] = []
    inside = TaskLogger(lambda s, t, level: got.append((s, t, level)))
    inside.setLevel(logging.INFO)
    inside.debug("dropped")
    inside.info("%s and %s", "a")  # a bad format is reported, not raised
    assert got[0][0] == "log" and "could not format" in got[0][1]


_REFUSE_POISON = {
    # an error the store cannot classify as a refusal of the data: a trigger's own
    "sqlite": ["CREATE TRIGGER tf_poison BEFORE INSERT ON tf_task_logs "
               "WHEN NEW.body LIKE '%POISON%' BEGIN SELECT abs(-9223372036854775807 - 1); END"],
    "postgresql": ["CREATE FUNCTION tf_poison() RETURNS trigger AS $$ BEGIN "
                   "IF NEW.body LIKE '%POISON%' THEN RAISE EXCEPTION 'no poison here'; END IF; "
                   "RETURN NEW; END $$ LANGUAGE plpgsql",
                   "CREATE TRIGGER tf_poison BEFORE INSERT ON tf_task_logs FOR EACH ROW "
                   "EXECUTE FUNCTION tf_poison()"],
    "mysql": ["CREATE TRIGGER tf_poison BEFORE INSERT ON tf_task_logs FOR EACH ROW BEGIN "
              "IF NEW.body LIKE '%POISON%' THEN SIGNAL SQLSTATE '45000' "
              "SET MESSAGE_TEXT = 'no poison here'; END IF; END"],
}


async def test_a_refused_row_does_not_hold_back_other_logs(
        make_engine: Callable[..., Engine], db_url: str) -> None:
    async with make_engine(db_url, task_log_flush_secs=0.05) as eng:
        store: Any = eng.store
        async with store.engine.begin() as conn:
            for ddl in _REFUSE_POISON[store.engine.dialect.name]:
                await conn.execute(sa.text(ddl))
        await eng.register_dag(_dag("poison", {
            "id": "a", "actionName": "shell",
            "params": {"cmd": "echo one; echo POISON; echo two", "shell": True}}))
        await eng.register_dag(_dag("fine", {"id": "a", "actionName": "shell",
                                             "params": {"cmd": ["echo", "fine"]}}))
        bad = await eng.run_dag("poison", wait=30)
        good = await eng.run_dag("fine", wait=30)
        # the refused row waits aside: the next instance's log is stored as ever
        texts = [x.text for x in (await eng.task_logs(good.id)).lines]
        assert "fine" in texts and "attempt 1 succeeded" in texts, texts
        # the refused row is written without the line the database will not take
        for _ in range(100):
            texts = [x.text for x in (await eng.task_logs(bad.id)).lines]
            if "two" in texts:
                break
            await asyncio.sleep(0.1)
    assert "one" in texts and "two" in texts, texts
    assert "1 log line(s) dropped here: the database refused to store them (the node's log " \
           "says why)" in texts
    assert not any("POISON" in t for t in texts)


async def test_long_ctx_log_lines_are_split_like_shell_lines(
        make_engine: Callable[..., Engine]) -> None:
    reg = ActionRegistry()
    long_ascii, long_utf8 = "y" * 200_000, "é日" * 20_000

    @reg.action("chatty")
    async def chatty(ctx: Any, params: Any) -> None:
        ctx.log.info(long_ascii)
        ctx.log.warning("%s", long_utf8)

    async with make_engine(registry=reg) as eng:
        await eng.register_dag(_dag("long", {"id": "a", "actionName": "chatty"}))
        inst = await eng.run_dag("long", wait=30)
        lines = [x for x in (await eng.task_logs(inst.id)).lines if x.stream == "log"]
    info = [x.text for x in lines if x.level == "INFO"]
    warn = [x.text for x in lines if x.level == "WARNING"]
    assert "".join(info) == long_ascii and [len(x) for x in info] == [65536] * 3 + [3392]
    assert "".join(warn) == long_utf8 and len(warn) == 2
    assert all(len(x.encode()) <= 65536 for x in warn)


def test_ctx_log_is_a_standard_logger() -> None:
    got: list[tuple[str, str | None]] = []
    log = TaskLogger(lambda s, t, level: got.append((t, level)))
    assert isinstance(log, logging.Logger)
    log.info("dict %(a)s", {"a": 1})
    log.getChild("db").warning("child %d", 2)
    mine: list[str] = []

    class Mine(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            mine.append(record.getMessage())

    log.addHandler(Mine())
    log.info("both %s", "ways")
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("caught")
    log.setLevel(logging.WARNING)
    log.info("dropped")
    assert got[:3] == [("dict 1", "INFO"), ("child 2", "WARNING"), ("both ways", "INFO")]
    assert got[3][1] == "ERROR" and got[3][0].startswith("caught\nTraceback")
    assert "ValueError: bad" in got[3][0] and len(got) == 4
    assert mine == ["both ways", "caught"]


async def test_lines_wait_out_a_failing_database(sqlite_url: str) -> None:
    # every log write fails for a while, as in an outage; the run goes on meanwhile
    plan = FaultPlan(methods={"write_task_logs": Fault(error_before=1.0)})
    store = FaultyStore(make_store(sqlite_url), plan)
    async with Engine(store, settings=EngineSettings(node_id="n", task_log_flush_secs=0.05)
                      ) as eng:
        await eng.register_dag(_dag("outage", {"id": "a", "actionName": "shell",
                                               "params": {"cmd": "seq 1 500", "shell": True}}))
        inst = await eng.run_dag("outage", wait=30)
        assert inst.status == "success", inst.reason
        assert store.injected[("write_task_logs", "before")] >= 1
        store.enabled = False  # the database is back
        page = await eng.task_logs(inst.id, "a")
    assert [x.text for x in page.lines if x.stream == "stdout"] == [
        str(i) for i in range(1, 501)]
