"""taskjet's receiver starts what the broker admits at once, with taskiq's middlewares,
dependencies and time limits; taskiq's stock receiver still works with the broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from src.engine.broker import JetStreamBroker
from src.engine.worker.inflight import InFlight
from tests.conftest import StartWorker
from tests.support import tasks

_STOCK = ("--receiver", "taskiq.receiver:Receiver")


async def _ran_once(broker: JetStreamBroker, keys: list[str]) -> None:
    handles = [await tasks.count.kiq(key) for key in keys]
    results = await asyncio.gather(*(h.wait_result(timeout=120) for h in handles))
    assert not any(r.is_err for r in results)
    counts = [await broker.results.redis.get(f"test-count:{key}") for key in keys]
    assert [int(c or 0) for c in counts] == [1] * len(keys), "each ran exactly once"


@pytest.mark.parametrize("extra", [(), _STOCK], ids=["taskjet", "stock"])
async def test_tasks_run_with_labels_dependencies_and_time_limits(
    broker: JetStreamBroker, start_worker: StartWorker, extra: tuple[str, ...]
) -> None:
    await start_worker(extra=extra)
    labelled = await (await tasks.labelled.kiq()).wait_result(timeout=60)
    assert labelled.return_value["colour"] == "blue", "TaskiqDepends resolved the context"
    late = await (await tasks.nap.kicker().with_labels(timeout=0.2).kiq(30)).wait_result(timeout=60)
    assert late.is_err
    assert type(late.error).__name__ == "TimeoutError"
    await _ran_once(broker, [uuid.uuid4().hex for _ in range(30)])


@pytest.mark.parametrize("extra", [(), _STOCK], ids=["taskjet", "stock"])
async def test_start_up_s_heap_is_out_of_the_garbage_collector_s_sight(
    broker: JetStreamBroker, start_worker: StartWorker, extra: tuple[str, ...]
) -> None:
    """Full collections walk only what tasks allocate, not every imported object."""
    await start_worker(extra=extra)
    frozen = await (await tasks.frozen_objects.kiq()).wait_result(timeout=60)
    assert frozen.return_value > 10_000


async def test_max_tasks_per_child_hands_the_rest_back(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    """The receiver stops after `--max-tasks-per-child` in the middle of a fetched batch: the
    rest of it goes back to the queue and a fresh process runs it, once."""
    worker = await start_worker(extra=("--max-tasks-per-child", "4"))
    await _ran_once(broker, [uuid.uuid4().hex for _ in range(25)])
    assert "Max number of tasks executed." in worker.output()


def test_a_busy_worker_fetches_when_a_batch_is_free() -> None:
    inflight = InFlight(capacity=100)
    assert inflight.refill, "nothing runs: fetch at once"
    inflight.deliveries = {object() for _ in range(90)}  # type: ignore[misc]
    assert not inflight.refill, "10 free of 100: wait for a batch's worth"
    inflight.deliveries = {object() for _ in range(75)}  # type: ignore[misc]
    assert inflight.refill
    inflight.remaining = 30
    inflight.deliveries = {object() for _ in range(93)}  # type: ignore[misc]
    assert inflight.refill, "7 free, and only 30 more to take in this process's life"
    inflight.deliveries = {object() for _ in range(100)}  # type: ignore[misc]
    assert not inflight.refill
    small = InFlight(capacity=2)
    small.deliveries = {object()}  # type: ignore[misc]
    assert small.refill, "a small worker fetches for one free slot"
