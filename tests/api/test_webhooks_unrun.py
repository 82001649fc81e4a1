"""Webhooks for tasks that end without running, to a real local receiver: cancelled while
queued, dead-lettered at admission (bad labels, past `max_age`), purged from their queue, and
an undecodable message. Each is sent once, like the end of a run; so is a cancelled run."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from nats.js import JetStreamContext

from src.config import Settings
from src.embedded import free_port
from src.engine.core.layout import Layout
from src.tasks.broker import broker as app_broker
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually
from tests.support.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver(free_port()).start()
    yield started
    await started.stop()


async def hooks(receiver: Receiver, task_id: str) -> list[dict[str, Any]]:
    bodies = [orjson.loads(r.body) for r in receiver.received]
    return [b for b in bodies if b["task_id"] == task_id]


async def only_hook(receiver: Receiver, task_id: str) -> dict[str, Any]:
    """The webhook about `task_id`, once some has come; and no second one after a delivery of
    a later task (deliveries run in order on one worker)."""
    (body,) = await eventually(lambda: hooks(receiver, task_id), what=f"webhook for {task_id}")
    marker = await tasks.echo.kicker().with_labels(notify_url=receiver.url).kiq("marker")
    await eventually(lambda: hooks(receiver, marker.task_id), what="the marker's webhook")
    assert len(await hooks(receiver, task_id)) == 1
    return body


async def test_a_task_cancelled_while_queued(
    client: httpx.AsyncClient, start_worker: StartWorker, receiver: Receiver
) -> None:
    await start_worker()
    kicker = tasks.echo.kicker().with_labels(notify_url=receiver.url, delay=3600)
    handle = await kicker.kiq("never")
    cancelled = await client.post(f"/api/v1/tasks/{handle.task_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = await only_hook(receiver, handle.task_id)
    assert body["state"] == "CANCELLED"
    assert body["task_name"] == tasks.echo.task_name
    assert body["error"]["type"] == "TaskCancelledError"
    assert body["timestamps"]["finished_at"] >= body["timestamps"]["queued_at"]
    assert body["timestamps"]["started_at"] is None


async def test_a_running_task_cancelled_is_told_once(
    client: httpx.AsyncClient, start_worker: StartWorker, receiver: Receiver
) -> None:
    await start_worker()
    key = uuid.uuid4().hex
    handle = await tasks.hang.kicker().with_labels(notify_url=receiver.url).kiq(key)
    redis = app_broker.results.redis
    await eventually(lambda: redis.exists(f"test-count:{key}"), what="hang started")
    assert (await client.post(f"/api/v1/tasks/{handle.task_id}/cancel")).status_code == 200
    body = await only_hook(receiver, handle.task_id)
    assert body["state"] == "CANCELLED"
    assert body["error"]["type"] == "TaskCancelledError"
    assert body["timestamps"]["started_at"] is not None


@pytest.mark.settings(ack_wait_s=2.0)
async def test_a_running_task_cancelled_while_its_worker_is_dead(
    client: httpx.AsyncClient, start_worker: StartWorker, receiver: Receiver
) -> None:
    """Nobody is left to store the outcome of the cancelled run: the worker that gets the
    message again stores it instead of running the task, so waiters and the webhook learn."""
    first = await start_worker()
    key = uuid.uuid4().hex
    handle = await tasks.hang.kicker().with_labels(notify_url=receiver.url).kiq(key)
    redis = app_broker.results.redis
    await eventually(lambda: redis.exists(f"test-count:{key}"), what="hang started")
    first.kill()
    cancelled = await client.post(f"/api/v1/tasks/{handle.task_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "CANCELLED"
    await start_worker()
    result = await handle.wait_result(timeout=60)
    assert result.is_err
    assert type(result.error).__name__ == "TaskCancelledError"
    body = await only_hook(receiver, handle.task_id)
    assert body["state"] == "CANCELLED"
    assert body["error"]["type"] == "TaskCancelledError"
    assert int(await redis.get(f"test-count:{key}")) == 1, "not run again"


async def test_a_message_with_bad_labels_dead_lettered_at_admission(
    client: httpx.AsyncClient,
    start_worker: StartWorker,
    receiver: Receiver,
    js: JetStreamContext,
    settings: Settings,
) -> None:
    await start_worker()
    task_id = uuid.uuid4().hex
    labels = {"max_age": "abc", "notify_url": receiver.url}
    body = {"task_id": task_id, "task_name": tasks.echo.task_name, "labels": labels}
    await js.publish(
        Layout.from_settings(settings).task_subject("default"),
        orjson.dumps({**body, "args": [1], "kwargs": {}}),
    )
    hook = await only_hook(receiver, task_id)
    assert hook["state"] == "DEAD"
    assert hook["error"]["type"] == "InvalidTaskError"
    assert "max_age" in hook["error"]["message"]


async def test_a_task_past_its_max_age(
    client: httpx.AsyncClient, start_worker: StartWorker, receiver: Receiver
) -> None:
    kicker = tasks.echo.kicker().with_labels(notify_url=receiver.url, max_age=0.05)
    handle = await kicker.kiq("stale")
    sent = time.monotonic()
    await eventually(lambda: time.monotonic() - sent > 0.05, what="task aged")
    await start_worker()
    body = await only_hook(receiver, handle.task_id)
    assert body["state"] == "DEAD"
    assert body["error"]["type"] == "TaskExpiredError"


async def test_a_task_purged_from_its_queue(
    client: httpx.AsyncClient, start_worker: StartWorker, receiver: Receiver
) -> None:
    """Nobody consumes the purged queue: the delivery goes to the default queue."""
    await start_worker()
    kicker = tasks.echo.kicker().with_labels(notify_url=receiver.url, queue_name="email")
    handle = await kicker.kiq("purged")
    purged = await client.delete("/api/v1/queues/email")
    assert purged.status_code == 200, purged.text
    body = await only_hook(receiver, handle.task_id)
    assert body["state"] == "CANCELLED"
    assert "purged" in body["error"]["message"]


async def test_an_undecodable_message_goes_to_the_global_url(
    client: httpx.AsyncClient,
    start_worker: StartWorker,
    receiver: Receiver,
    js: JetStreamContext,
    settings: Settings,
) -> None:
    await start_worker(env_overrides={"TASKJET_WEBHOOK_URL": receiver.url})
    task_id = uuid.uuid4().hex
    garbled = b'{"task_id": "' + task_id.encode() + b'", "task_name": "x", "args": 7}'
    await js.publish(Layout.from_settings(settings).task_subject("default"), garbled)
    body = await only_hook(receiver, task_id)
    assert body["state"] == "DEAD"
    assert body["error"]["type"] == "InvalidTaskError"
