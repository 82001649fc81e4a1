"""`taskjet queues pause|resume|list` and `taskjet purge` against real workers."""

from __future__ import annotations

import asyncio
import uuid

from src.engine.broker import JetStreamBroker
from tests.cli.conftest import Taskjet, json_lines
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually

BOTH = {"TASKJET_QUEUES": "default,email"}


async def _state(broker: JetStreamBroker, task_id: str) -> str | None:
    record = await broker.records.get(task_id)
    return record.state.value if record else None


async def test_a_paused_queue_holds_new_tasks_while_another_runs_then_resume_drains_it(
    broker: JetStreamBroker, start_worker: StartWorker, taskjet: Taskjet
) -> None:
    code, out = await taskjet("queues", "pause", "email")
    assert (code, out.strip()) == (
        0,
        "paused email: workers fetch nothing from it until it is resumed",
    )
    await start_worker(env_overrides=BOTH)
    held = [await tasks.send_email.kiq(uuid.uuid4().hex) for _ in range(2)]
    others = [await tasks.echo.kiq(i) for i in range(2)]
    assert [(await h.wait_result(timeout=60)).return_value for h in others] == [0, 1]
    assert [await _state(broker, h.task_id) for h in held] == ["PENDING"] * 2

    code, out = await taskjet("queues", "list", "--json")
    queues = {q["queue"]: q for q in json_lines(out)}
    assert (queues["email"]["paused"], queues["email"]["messages"]) == (True, 2)
    assert queues["default"]["paused"] is False
    code, out = await taskjet("queues", "list")
    assert "PAUSED" in out

    code, out = await taskjet("queues", "resume", "email")
    assert (code, out.strip()) == (0, "resumed email")
    results = await asyncio.gather(*(h.wait_result(timeout=60) for h in held))
    assert not any(r.is_err for r in results)


async def test_purge_drops_queued_tasks_and_leaves_running_ones(
    broker: JetStreamBroker, start_worker: StartWorker, taskjet: Taskjet
) -> None:
    await start_worker(extra=("--max-async-tasks", "1"))
    key = uuid.uuid4().hex
    running = await tasks.hang.kiq(key)
    await eventually(
        lambda: broker.results.redis.get(f"test-count:{key}"), what="the long task runs"
    )
    queued = [await tasks.echo.kiq(i) for i in range(3)]

    code, out = await taskjet("purge", "default")
    assert code == 2
    assert "add --yes" in out
    code, out = await taskjet("purge", "default", "--lane", "urgent", "--yes")
    assert code == 2
    assert "no lane 'urgent'" in out

    code, out = await taskjet("purge", "default", "--yes")
    assert code == 0, out
    assert "purged 3 queued task(s) from default (high, normal, low)" in out
    for handle in queued:
        record = await broker.records.get(handle.task_id)
        assert record is not None
        assert record.state == "CANCELLED"
        assert record.error is not None
        assert "purged" in (record.error.message or "")
    assert await _state(broker, running.task_id) == "STARTED", "the running task is left alone"
    await broker.control.cancel(running.task_id)


async def test_bad_queue_name_is_refused(taskjet: Taskjet) -> None:
    code, out = await taskjet("queues", "pause", "no.dots")
    assert code == 2
    assert "'no.dots' is not a queue name" in out
