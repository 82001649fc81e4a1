"""taskjet's receiver starts what the broker admits at once, with taskiq's middlewares,
dependencies and time limits; taskiq's stock receiver still works with the broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from taskiq.message import TaskiqMessage

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.core.labels import TaskLabels
from src.engine.worker.delivery import Delivery
from src.engine.worker.inflight import LONG_RUN_BATCH, LONG_RUN_S, InFlight
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


class _Msg:
    """The one thing a settled delivery asks of its message here: to be acked."""

    async def ack(self) -> None:
        return None


def _delivery(settings: Settings) -> Delivery:
    message = TaskiqMessage(task_id=uuid.uuid4().hex, task_name="t", labels={}, args=[], kwargs={})
    return Delivery(_Msg(), message, "default", TaskLabels.lenient({}, settings))  # type: ignore[arg-type]


async def test_a_slot_is_free_once_its_function_returns(settings: Settings) -> None:
    """The next task may start while the last one's outcome is being saved; the delivery is
    still held (leases, shutdown) until it is settled, and never more than twice the capacity
    is held at once."""
    inflight = InFlight(capacity=2)
    first, second = _delivery(settings), _delivery(settings)
    for delivery in (first, second):
        inflight.add(delivery)
    assert inflight.free == 0
    assert len(inflight) == 2
    first.returned(0.001)
    assert inflight.free == 1, "a returned function frees its slot"
    assert len(inflight) == 1
    assert first in inflight.deliveries, "held until settled"
    third = _delivery(settings)
    inflight.add(third)
    second.returned(0.001)
    third.returned(0.001)
    assert len(inflight) == 0, "none running"
    assert inflight.free == 1, "3 held: at most 2 x 2"
    await first.ack()
    assert first not in inflight.deliveries
    assert inflight.free == 2
    await second.ack()
    await third.ack()
    assert not inflight.deliveries
    assert not inflight.ended
    assert inflight.free == 2


async def test_a_delivery_handed_back_while_running_is_not_counted_when_it_returns(
    settings: Settings,
) -> None:
    inflight = InFlight(capacity=2)
    delivery = _delivery(settings)
    inflight.add(delivery)
    await delivery.ack()  # settled by shutdown's hand-back while its function still ran
    delivery.returned(0.5)
    assert not inflight.ended
    assert inflight.free == 2


def test_a_worker_whose_tasks_run_long_fetches_for_each_free_slot(settings: Settings) -> None:
    """Short tasks: fetch when a batch's worth is free, as much as is free. Long tasks (the
    moving average of run times past `LONG_RUN_S`): fetch as soon as a slot is free, a few at
    a time, so starts spread out instead of whole batches ending and starting together."""
    inflight = InFlight(capacity=100)
    inflight.run_s = LONG_RUN_S
    assert inflight.batch(64) == 64, "nothing runs: fill up at once"
    inflight.run_s = 0.0
    held = [_delivery(settings) for _ in range(90)]
    for delivery in held:
        inflight.add(delivery)
    assert not inflight.refill, "short tasks: 10 free of 100, wait for a batch's worth"
    for delivery in held[:60]:
        delivery.returned(LONG_RUN_S * 10)
    assert inflight.run_s >= LONG_RUN_S
    assert inflight.refill
    assert inflight.batch(64) == LONG_RUN_BATCH, "70 free, but a few at a time"
    assert inflight.batch(4) == 4, "never more than the settings' batch"
    full = InFlight(capacity=1)
    full.run_s = LONG_RUN_S
    full.add(_delivery(settings))
    assert not full.refill, "no free slot: no fetch"
    assert full.batch(64) == 0
