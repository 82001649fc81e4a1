"""The stock `taskiq worker` options mean what they say, or are refused with one clear line."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually


async def _refused(
    start_worker: StartWorker,
    *,
    extra: tuple[str, ...] = (),
    modules: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> str:
    worker = await start_worker(*modules, extra=extra, env_overrides=env, wait=False)
    await worker.wait(60)  # the whole `taskiq worker` command stops, not only one process
    lines = [line for line in worker.output().splitlines() if "taskjet worker cannot start" in line]
    assert len(lines) == 1, worker.output()
    return lines[0]


async def test_max_async_tasks_sizes_what_a_worker_takes(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker(extra=("--max-async-tasks", "2"))
    key = uuid.uuid4().hex
    handles = [await tasks.slow.kiq(f"{key}-{i}", 2.0) for i in range(10)]
    most_started = 0
    deadline = time.monotonic() + 120
    while not all([await h.is_ready() for h in handles]):
        assert time.monotonic() < deadline, "tasks did not finish"
        counts = await broker.records.counts()
        running = counts[TaskState.STARTED] + counts[TaskState.PROGRESS]
        most_started = max(most_started, running)
        await asyncio.sleep(0.05)
    assert most_started == 2, "never more started than the worker runs at once"
    results = await asyncio.gather(*(h.wait_result(timeout=10) for h in handles))
    assert not any(r.is_err for r in results)


async def test_the_rest_waits_pending_in_the_queue(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker(extra=("--max-async-tasks", "2"))
    key = uuid.uuid4().hex
    handles = [await tasks.slow.kiq(f"{key}-{i}", 5.0) for i in range(10)]

    async def two_running() -> bool:
        counts = await broker.records.counts()
        return counts[TaskState.STARTED] == 2 and counts[TaskState.PENDING] == 8

    await eventually(two_running, timeout_s=60, what="two STARTED, eight PENDING")
    await asyncio.gather(*(h.wait_result(timeout=120) for h in handles))


@pytest.mark.settings(worker_concurrency=5)
async def test_a_concurrency_setting_that_disagrees_with_the_cli_is_refused(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    line = await _refused(start_worker, extra=("--max-async-tasks", "3"))
    assert "TASKJET_WORKER_CONCURRENCY=5 disagrees with --max-async-tasks 3" in line


@pytest.mark.parametrize("ack_type", ["when_received", "when_executed"])
async def test_an_ack_type_that_breaks_the_guarantees_is_refused(
    broker: JetStreamBroker, start_worker: StartWorker, ack_type: str
) -> None:
    line = await _refused(start_worker, extra=("--ack-type", ack_type))
    assert f"--ack-type {ack_type}" in line


async def test_when_saved_is_accepted(broker: JetStreamBroker, start_worker: StartWorker) -> None:
    await start_worker(extra=("--ack-type", "when_saved"))
    assert (await (await tasks.echo.kiq(1)).wait_result(timeout=60)).return_value == 1


async def test_a_task_declaring_an_early_ack_stops_the_worker_at_start(
    start_worker: StartWorker, settings: Settings
) -> None:
    line = await _refused(start_worker, modules=("tests.support.tasks", "tests.support.ack_early"))
    assert "tests.support.ack_early:acked_early" in line
    assert "ack_type" in line
