"""Circuit breakers across two worker processes: one opens for both, fails fast, half-opens,
closes after a good trial, and is reset over HTTP."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from src.config import Settings
from src.engine.core.errors import CircuitOpenError
from src.engine.core.layout import Layout
from src.engine.core.priority import LANES
from src.engine.core.states import TaskState
from src.tasks.broker import broker as app_broker
from tests.conftest import StartWorker
from tests.support import breakers
from tests.support.processes import eventually, waiting_pulls


async def two_workers(start_worker: StartWorker, js: JetStreamContext, settings: Settings) -> None:
    """One worker process on the default queue, another on queue `b` only: a task sent to
    `b` runs in the second process, whatever the scheduling."""
    await start_worker("tests.support.breakers")
    await start_worker("tests.support.breakers", env_overrides={"TASKJET_QUEUES": "b"}, wait=False)
    layout = Layout.from_settings(settings)

    async def b_ready() -> bool:
        pulls = [
            await waiting_pulls(js, settings.stream, layout.consumer("b", lane)) for lane in LANES
        ]
        return sum(pulls) > 0

    await eventually(b_ready, what="worker on queue b ready")


async def run(name: str, fail: bool, on_b: bool = False, open_s: float = 3600.0) -> Any:
    """The result of one call, and the worker process that ran it."""
    task = breakers.call_service
    kicker = task.kicker().with_labels(queue_name="b") if on_b else task.kicker()
    handle = await kicker.kiq(name, fail, open_s)
    result = await handle.wait_result(timeout=60)
    record = await app_broker.records.get(handle.task_id)
    return result, record.worker if record else None


async def call(name: str, fail: bool, on_b: bool = False, open_s: float = 3600.0) -> Any:
    return (await run(name, fail, on_b, open_s))[0]


async def view(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    listed = (await client.get("/api/v1/circuit-breakers")).json()["breakers"]
    return next(b for b in listed if b["name"] == name)


async def test_opens_for_both_processes_fails_fast_and_resets_over_http(
    client: httpx.AsyncClient, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    await two_workers(start_worker, js, settings)
    name = f"svc-{uuid.uuid4().hex[:8]}"
    workers = set()
    for on_b in (False, False, True):  # two failures in one process, the third in the other
        result, worker = await run(name, True, on_b)
        assert isinstance(result.error, ConnectionError), result.error
        workers.add(worker)
    assert len(workers) == 2, "the failures were counted in two processes"
    opened = await view(client, name)
    assert opened["state"] == "open"
    assert opened["failure_threshold"] == 3
    assert 3000 < opened["retry_in_s"] <= 3600

    for on_b in (False, True):  # fails fast everywhere: the service is not called
        result = await call(name, False, on_b)
        assert isinstance(result.error, CircuitOpenError), result.error
        assert name in str(result.error)

    # A task that retries waits for the open time left, not its backoff.
    handle = await breakers.call_service_with_retries.kiq(name)

    async def retrying() -> Any:
        record = await app_broker.records.get(handle.task_id)
        return record if record and record.state is TaskState.RETRYING else None

    record = await eventually(retrying, what="retry scheduled")
    assert record.retry_at is not None
    assert record.finished_at is not None
    assert record.retry_at - record.finished_at > 3000

    missing = await client.post("/health/workers/reset-circuit-breaker", params={"name": "nope"})
    assert missing.status_code == 404
    reset = await client.post("/health/workers/reset-circuit-breaker", params={"name": name})
    assert reset.json() == {"reset": [name]}
    assert (await view(client, name))["state"] == "closed"
    for on_b in (False, True):
        assert (await call(name, False, on_b)).return_value == "answered"


async def test_half_opens_after_the_open_period_and_a_good_trial_closes_it(
    client: httpx.AsyncClient, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    await two_workers(start_worker, js, settings)
    name = f"svc-{uuid.uuid4().hex[:8]}"
    for on_b in (False, False, True):
        await call(name, True, on_b, open_s=0.5)

    async def state_is(wanted: str) -> bool:
        return (await view(client, name))["state"] == wanted

    await eventually(lambda: state_is("half_open"), what="half-open")
    # A failed trial (in the other process) opens it again for another open period ...
    assert isinstance((await call(name, True, on_b=True, open_s=0.5)).error, ConnectionError)
    assert (await view(client, name))["state"] in {"open", "half_open"}
    await eventually(lambda: state_is("half_open"), what="half-open again")
    # ... and a good one closes it for both.
    assert (await call(name, False, on_b=True, open_s=0.5)).return_value == "answered"
    assert (await view(client, name))["state"] == "closed"
    assert (await view(client, name))["failures"] == 0
    assert (await call(name, False, open_s=0.5)).return_value == "answered"


async def test_a_decorated_task_and_reset_of_every_breaker(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    await start_worker("tests.support.breakers")
    failed = await (await breakers.decorated_call.kiq(True)).wait_result(timeout=60)
    assert isinstance(failed.error, ConnectionError)
    fast = await (await breakers.decorated_call.kiq(False)).wait_result(timeout=60)
    assert isinstance(fast.error, CircuitOpenError)
    for path in ("/health/workers", "/health/workers/diagnostics"):
        health = (await client.get(path)).json()
        assert len(health["workers"]) == 1
        (shown,) = health["breakers"]
        assert shown["name"] == "decorated"
        assert shown["state"] == "open"
        assert shown["failures"] == 0  # forgotten once it opened
        assert 3000 < shown["retry_in_s"] <= 3600
        assert shown["open_until"] - time.time() == pytest.approx(shown["retry_in_s"], abs=5)
    assert (await client.post("/health/workers/reset-circuit-breaker")).json() == {
        "reset": ["decorated"]
    }
    (closed,) = (await client.get("/health/workers")).json()["breakers"]
    assert (closed["state"], closed["retry_in_s"], closed["open_until"]) == ("closed", 0, None)
    done = await (await breakers.decorated_call.kiq(False)).wait_result(timeout=60)
    assert done.return_value == "answered"
