"""Delays, named queues, limits and priorities, on real servers and processes.

Periodic schedules are tested in `test_periodic.py`, `test_schedules_api.py` and `test_ticks.py`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.js import JetStreamContext

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually


def _key() -> str:
    return uuid.uuid4().hex


# Delays ----------------------------------------------------------------------------------------
async def test_delay_is_honoured_without_holding_a_worker(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    await start_worker()
    key = _key()
    sent = time.time()
    handle = await tasks.when.kicker().with_labels(delay=2).kiq(key)
    record = await broker.records.get(handle.task_id)
    assert record is not None
    assert record.state is TaskState.PENDING
    assert record.due_at is not None
    assert record.due_at >= sent + 2
    # Meanwhile it is in no work queue and leased to no worker.
    assert (await js.stream_info(settings.stream)).state.messages == 0
    consumer = await js.consumer_info(settings.stream, "workers-default")
    assert consumer.num_ack_pending == 0
    assert (await broker.monitor.status()).queues["scheduled"] == 1
    started = (await handle.wait_result(timeout=30)).return_value
    assert started >= sent + 2, f"ran {sent + 2 - started:.3f}s early"


async def test_eta_is_honoured(broker: JetStreamBroker, start_worker: StartWorker) -> None:
    await start_worker()
    eta = datetime.now(UTC) + timedelta(seconds=2)
    handle = await tasks.when.kicker().with_labels(eta=eta.isoformat()).kiq(_key())
    started = (await handle.wait_result(timeout=30)).return_value
    assert started >= eta.timestamp()


async def test_bad_eta_is_refused_at_dispatch(broker: JetStreamBroker) -> None:
    with pytest.raises(ValueError, match="eta"):
        await tasks.when.kicker().with_labels(eta="next tuesday").kiq(_key())


@pytest.mark.faults
async def test_delayed_task_survives_a_worker_restart(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    worker = await start_worker()
    handle = await tasks.when.kicker().with_labels(delay=2).kiq(_key())
    assert await worker.stop() == 0
    await start_worker()
    assert (await handle.wait_result(timeout=30)).is_err is False


async def test_cancelled_delayed_task_never_runs(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    await start_worker()
    key = _key()
    handle = await tasks.when.kicker().with_labels(delay=2).kiq(key)
    record = await broker.control.cancel(handle.task_id)
    assert record.state is TaskState.CANCELLED
    after = await tasks.when.kicker().with_labels(delay=3).kiq(_key())
    await after.wait_result(timeout=30)  # a later delayed task ran: the first one's time passed
    assert await broker.results.redis.get(f"test-when:{key}") is None
    assert (await broker.results.get_result(handle.task_id)).is_err


# Named queues ----------------------------------------------------------------------------------
async def test_worker_consumes_only_its_queues(
    broker: JetStreamBroker, start_worker: StartWorker, settings: Settings, js: JetStreamContext
) -> None:
    await start_worker(env_overrides={"TASKJET_QUEUES": "email"}, wait=False)
    key = _key()
    mail = await tasks.send_email.kiq(key)
    other = await tasks.echo.kiq("default queue")
    assert (await mail.wait_result(timeout=30)).return_value == key

    async def seen() -> dict[str, Any] | None:
        body = (await broker.monitor.status()).model_dump()
        return body if body["workers"] else None

    status = await eventually(seen, what="worker reported")
    assert status["named_queues"]["default"]["messages"] == 1
    assert status["named_queues"]["default"]["consumed"] is False
    assert status["named_queues"]["email"]["consumed"] is True
    assert status["queues"]["primary"] == 1, "the unconsumed queue keeps its task"
    await start_worker()
    assert (await other.wait_result(timeout=30)).return_value == "default queue"


async def test_bad_queue_name_is_refused(broker: JetStreamBroker) -> None:
    with pytest.raises(ValueError, match="queue name"):
        await tasks.echo.kicker().with_labels(queue_name="a.b").kiq(1)


# Rate and concurrency limits -------------------------------------------------------------------
@pytest.mark.settings(throttle_retry_s=0.1, worker_concurrency=20)
async def test_rate_limit_holds_across_two_worker_processes(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker(workers=2)
    key = _key()
    handles = [await tasks.rate_limited.kiq(key) for _ in range(14)]
    results = await asyncio.gather(*(h.wait_result(timeout=60) for h in handles))
    assert not any(r.is_err for r in results), "deferred, never failed"
    raw = await broker.results.redis.hgetall(f"test-windows:{key}")
    per_window = {int(k): int(v) for k, v in raw.items()}
    assert sum(per_window.values()) == 14
    assert max(per_window.values()) <= 4, per_window
    assert len(per_window) >= 4, "14 starts at 4 a second need at least 4 windows"


@pytest.mark.settings(throttle_retry_s=0.1, worker_concurrency=20)
async def test_concurrency_limit_holds_per_key_across_workers(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker(workers=2)
    key = _key()
    handles = [
        await tasks.one_group_at_a_time.kiq(key, group=g) for g in ("a", "b") for _ in range(6)
    ]
    results = await asyncio.gather(*(h.wait_result(timeout=60) for h in handles))
    assert not any(r.is_err for r in results)
    assert int(await broker.results.redis.get(f"test-count:{key}")) == 12
    for group in ("a", "b"):
        most = int(await broker.results.redis.get(f"test-max:{key}:{group}"))
        assert most == 2, f"group {group}: {most} ran at once (limit 2)"


# Priorities ------------------------------------------------------------------------------------
async def _start_order(broker: JetStreamBroker, key: str) -> list[str]:
    return [t.decode() for t in await broker.results.redis.lrange(f"test-order:{key}", 0, -1)]


@pytest.mark.settings(worker_concurrency=3)
async def test_higher_priority_starts_first_under_a_backlog(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = _key()
    handles = []
    for priority, tag in ((1, "low"), (5, "normal"), (9, "high")):  # the most urgent queued last
        for _ in range(6):
            kicker = tasks.ordered.kicker().with_labels(priority=priority)
            handles.append(await kicker.kiq(key, tag))
    await start_worker(extra=("--max-async-tasks", "3"))
    await asyncio.gather(*(h.wait_result(timeout=60) for h in handles))
    order = await _start_order(broker, key)
    assert len(order) == 18

    def mean_position(tag: str) -> float:
        return sum(i for i, t in enumerate(order) if t == tag) / 6

    assert mean_position("high") < mean_position("normal") < mean_position("low"), order
    assert order[0] == "high", order
    status = await broker.monitor.status()
    assert status.named_queues["default"].lanes == {"high": 0, "normal": 0, "low": 0}


async def test_queue_status_shows_depth_per_priority(broker: JetStreamBroker) -> None:
    for priority in (9, 9, 5, 0):
        await tasks.echo.kicker().with_labels(priority=priority).kiq(1)
    status = await broker.monitor.status()
    assert status.named_queues["default"].lanes == {"high": 2, "normal": 1, "low": 1}
    assert status.queues["primary"] == 4


@pytest.mark.settings(worker_concurrency=10)
async def test_low_priority_is_not_starved(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = _key()
    high = [
        await tasks.ordered.kicker().with_labels(priority="high").kiq(key, "high")
        for _ in range(60)
    ]
    low = [
        await tasks.ordered.kicker().with_labels(priority="low").kiq(key, "low") for _ in range(3)
    ]
    await start_worker(extra=("--max-async-tasks", "10"))
    await asyncio.gather(*(h.wait_result(timeout=60) for h in high + low))
    order = await _start_order(broker, key)
    last_high = max(i for i, t in enumerate(order) if t == "high")
    first_low = order.index("low")
    assert first_low < last_high, f"low started only after every high task: {order}"


async def test_bad_priority_is_refused_at_dispatch(broker: JetStreamBroker) -> None:
    with pytest.raises(ValueError, match="priority"):
        await tasks.echo.kicker().with_labels(priority=12).kiq(1)
