"""Worker recycling: after so many tasks, or past a memory limit, a worker process stops
taking work, hands back what it fetched, finishes what it runs and exits; taskiq's manager
starts a fresh one. No task is lost or run twice for it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from src.config import load_settings
from src.engine.broker import JetStreamBroker
from src.engine.worker.recycling import Recycling, resident_mb
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import Proc, eventually


async def _numbers(closed: list[bool]) -> AsyncIterator[int]:
    try:
        n = 0
        while True:
            yield n
            n += 1
    finally:
        closed.append(True)


async def _never() -> AsyncIterator[int]:
    await asyncio.Event().wait()
    yield 0


async def test_after_max_tasks_no_more_are_taken() -> None:
    recycling = Recycling(lambda: load_settings(max_tasks_per_child=3))
    closed: list[bool] = []
    source = _numbers(closed)
    taken = [n async for n in recycling.until_due(source)]
    await source.aclose()
    assert taken == [0, 1, 2]
    assert recycling.reason == "3 task(s) started (limit 3)"
    assert closed == [True]


async def test_over_the_memory_limit_a_pending_wait_is_given_up() -> None:
    recycling = Recycling(lambda: load_settings(max_memory_per_child_mb=100), memory_mb=lambda: 150)
    watcher = asyncio.create_task(recycling.watch_memory())
    taken = [n async for n in recycling.until_due(_never())]
    await watcher
    assert taken == []
    assert recycling.reason == "150 MiB resident, over 100 MiB"


async def test_no_limits_no_recycling() -> None:
    recycling = Recycling(load_settings)
    await recycling.watch_memory()  # returns at once
    closed: list[bool] = []
    source = _numbers(closed)
    async for n in recycling.until_due(source):
        if n == 50:
            break
    assert recycling.reason is None
    assert 0 < resident_mb() < 100_000


async def _counts(broker: JetStreamBroker, keys: list[str]) -> list[int]:
    values = [await broker.results.redis.get(f"test-count:{key}") for key in keys]
    return [int(v or 0) for v in values]


def _pids(worker: Proc) -> set[int]:
    return {child.pid for child in worker.children()}


async def _all_ran_once(broker: JetStreamBroker, handles: list, keys: list[str]) -> None:  # type: ignore[type-arg]
    results = await asyncio.gather(*(h.wait_result(timeout=120) for h in handles))
    assert not any(r.is_err for r in results)
    assert await _counts(broker, keys) == [1] * len(keys), "each ran exactly once"


@pytest.mark.parametrize("launcher", [False, True], ids=["taskiq-worker", "taskjet-worker"])
async def test_a_worker_process_is_replaced_after_n_tasks_and_nothing_is_lost_or_doubled(
    broker: JetStreamBroker, start_worker: StartWorker, launcher: bool
) -> None:
    worker = await start_worker(
        env_overrides={"TASKJET_MAX_TASKS_PER_CHILD": "5"}, launcher=launcher
    )
    first = _pids(worker)
    # More than a task could survive being handed back (TASKJET_MAX_REDELIVERIES) per process.
    keys = [uuid.uuid4().hex for _ in range(37)]
    handles = [await tasks.count.kiq(key) for key in keys]
    await _all_ran_once(broker, handles, keys)
    log = worker.output()
    assert log.count("recycling this worker process: 5 task(s) started (limit 5)") >= 7
    assert "handing back" not in log, "a process fetches no more than it will run"
    assert _pids(worker) - first, "a fresh process took over"


async def test_a_worker_process_over_its_memory_limit_is_replaced(
    broker: JetStreamBroker, start_worker: StartWorker, js: object
) -> None:
    probe = await start_worker()
    (child,) = probe.children()
    with open(f"/proc/{child.pid}/statm") as statm:
        baseline_mb = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    await probe.stop()

    limit = int(baseline_mb) + 64
    worker = await start_worker(env_overrides={"TASKJET_MAX_MEMORY_PER_CHILD_MB": str(limit)})
    first = _pids(worker)
    assert (await (await tasks.hog.kiq(128)).wait_result(timeout=60)).return_value == 1

    async def replaced() -> bool:
        return bool(_pids(worker)) and not (_pids(worker) & first)

    await eventually(replaced, timeout_s=60, what="a fresh process")
    assert f"MiB resident, over {limit} MiB" in worker.output()
    keys = [uuid.uuid4().hex for _ in range(10)]
    handles = [await tasks.count.kiq(key) for key in keys]
    await _all_ran_once(broker, handles, keys)


async def test_a_cancelled_wait_leaves_the_source_closable() -> None:
    """taskiq cancels its pending read on SIGTERM: the source must not be left running in a
    task of its own (its `finally` hands back what it holds)."""
    closed: list[bool] = []
    entered = asyncio.Event()

    async def blocking() -> AsyncIterator[int]:
        try:
            entered.set()
            await asyncio.Event().wait()
            yield 0
        finally:
            closed.append(True)

    source = blocking()
    recycling = Recycling(load_settings)

    async def consume() -> None:
        async for _ in recycling.until_due(source):
            pass

    consumer = asyncio.create_task(consume())
    await entered.wait()
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    await source.aclose()  # raised "asynchronous generator is already running" before
    assert closed == [True]
