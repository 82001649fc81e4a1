"""Webhooks to a real local HTTP receiver: delivered and signed, retried while the receiver is
down, never holding up other tasks when it hangs, and refused for hosts off the allow-list."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from nats.js import JetStreamContext

from src.config import Settings
from src.embedded import free_port
from src.engine.core.errors import LabelError
from src.engine.core.layout import Layout
from src.engine.core.priority import LANES
from src.engine.worker.webhooks import WEBHOOK_TASK
from src.tasks.broker import broker as app_broker
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually, waiting_pulls
from tests.support.receiver import Receiver

SECRET = "webhook-signing-key-0123456789"
pytestmark = pytest.mark.settings(webhook_secret=SECRET)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver(free_port()).start()
    yield started
    await started.stop()


async def deliveries(client: httpx.AsyncClient, state: str) -> list[dict[str, Any]]:
    page = await client.get("/api/v1/tasks", params={"name": WEBHOOK_TASK, "state": state})
    items: list[dict[str, Any]] = page.json()["items"]
    return items


async def test_delivered_once_and_signed(
    client: httpx.AsyncClient, start_worker: StartWorker, receiver: Receiver
) -> None:
    await start_worker()
    handle = await tasks.echo.kicker().with_labels(notify_url=receiver.url).kiq({"n": 1})
    assert (await handle.wait_result(timeout=60)).return_value == {"n": 1}
    await eventually(lambda: receiver.received, what="webhook received")
    await eventually(lambda: deliveries(client, "SUCCESS"), what="delivery task done")
    (hook,) = receiver.received
    expected = "sha256=" + hmac.new(SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(hook.headers["x-taskjet-signature"], expected)
    assert hook.headers["content-type"] == "application/json"
    body = orjson.loads(hook.body)
    assert body["task_id"] == handle.task_id
    assert body["task_name"] == tasks.echo.task_name
    assert body["state"] == "SUCCESS"
    assert body["result"] == {"n": 1}
    assert "error" not in body
    times = body["timestamps"]
    assert times["queued_at"] <= times["started_at"] <= times["finished_at"]
    assert len(receiver.received) == 1, "the delivery task itself is not notified about"


async def test_a_failure_carries_its_error_and_the_global_url_gets_every_task(
    client: httpx.AsyncClient, start_worker: StartWorker, receiver: Receiver
) -> None:
    await start_worker(env_overrides={"TASKJET_WEBHOOK_URL": receiver.url})
    handle = await tasks.decline.kiq(7)
    await handle.wait_result(timeout=60)
    await eventually(lambda: receiver.received, what="webhook received")
    body = orjson.loads(receiver.received[0].body)
    assert body["task_id"] == handle.task_id
    assert body["state"] == "DEAD"
    assert body["error"] == {"type": "PaymentDeclinedError", "message": "card declined for 7"}
    assert "result" not in body


async def test_delivered_from_a_worker_of_another_queue(
    client: httpx.AsyncClient,
    start_worker: StartWorker,
    receiver: Receiver,
    js: JetStreamContext,
    settings: Settings,
) -> None:
    """The delivery goes to the ended task's queue, which its worker consumes."""
    await start_worker(env_overrides={"TASKJET_QUEUES": "b"}, wait=False)
    consumers = [Layout.from_settings(settings).consumer("b", lane) for lane in LANES]

    async def ready() -> bool:
        return sum([await waiting_pulls(js, settings.stream, c) for c in consumers]) > 0

    await eventually(ready, what="worker on queue b")
    kicker = tasks.echo.kicker().with_labels(queue_name="b", notify_url=receiver.url)
    await (await kicker.kiq("on b")).wait_result(timeout=60)
    await eventually(lambda: receiver.received, what="webhook received")
    assert orjson.loads(receiver.received[0].body)["result"] == "on b"


async def test_retried_while_the_receiver_is_down_then_delivered(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    down = Receiver(free_port())  # not listening yet
    await start_worker()
    handle = await tasks.echo.kicker().with_labels(notify_url=down.url).kiq("late")
    await handle.wait_result(timeout=60)

    async def failed_once() -> bool:
        states = await app_broker.breakers.states()
        return any(s.name == "webhook:127.0.0.1" and s.failures >= 1 for s in states)

    await eventually(failed_once, what="a failed delivery counted")
    assert down.received == []
    await down.start()
    try:
        await eventually(lambda: down.received, what="delivered after the receiver came up")
        assert orjson.loads(down.received[0].body)["result"] == "late"
        (delivery,) = await eventually(lambda: deliveries(client, "SUCCESS"))
        assert delivery["attempts"] >= 2, "delivered by a retry"
    finally:
        await down.stop()


async def test_a_hanging_receiver_never_holds_up_other_tasks(
    client: httpx.AsyncClient, start_worker: StartWorker, receiver: Receiver
) -> None:
    receiver.hang = True
    await start_worker(env_overrides={"TASKJET_WEBHOOK_TIMEOUT_S": "600"})
    handle = await tasks.echo.kicker().with_labels(notify_url=receiver.url).kiq("first")
    assert (await handle.wait_result(timeout=60)).return_value == "first"
    await eventually(lambda: receiver.hanging == 1, what="the receiver holds the delivery")
    others = [await tasks.echo.kiq(i) for i in range(20)]
    assert [(await h.wait_result(timeout=60)).return_value for h in others] == list(range(20))
    assert receiver.hanging == 1, "still hanging while the others finished"
    assert receiver.received == []


@pytest.mark.settings(webhook_secret=SECRET, webhook_allow="hooks.example.com, *.corp.example")
async def test_a_host_off_the_allow_list_is_refused_at_submit(client: httpx.AsyncClient) -> None:
    for url, status in [
        ("http://127.0.0.1:9/hook", 422),
        ("http://169.254.169.254/latest/meta-data", 422),
        ("ftp://hooks.example.com/x", 422),
        ("https://hooks.example.com/x", 202),
        ("https://ci.corp.example/x", 202),
    ]:
        response = await client.post(
            "/api/v1/tasks",
            json={
                "task": "tests.support.tasks:typed",
                "args": ["a"],
                "options": {"notify_url": url},
            },
        )
        assert response.status_code == status, (url, response.text)
    refused = await client.post(
        "/api/v1/tasks",
        json={
            "task": "tests.support.tasks:typed",
            "args": ["a"],
            "options": {"notify_url": "http://10.0.0.1/"},
        },
    )
    assert "TASKJET_WEBHOOK_ALLOW" in refused.json()["error"]["message"]
    with pytest.raises(LabelError, match="notify_url"):
        await tasks.echo.kicker().with_labels(notify_url="http://127.0.0.1:9/").kiq(1)


async def test_a_host_off_the_workers_allow_list_is_refused_at_delivery(
    client: httpx.AsyncClient, start_worker: StartWorker, receiver: Receiver
) -> None:
    await start_worker(env_overrides={"TASKJET_WEBHOOK_ALLOW": "hooks.example.com"})
    handle = await tasks.echo.kicker().with_labels(notify_url=receiver.url).kiq("kept")
    assert (await handle.wait_result(timeout=60)).return_value == "kept", "the task still runs"
    (dead,) = await eventually(lambda: deliveries(client, "DEAD"), what="delivery refused")
    assert dead["error"]["type"] == "WebhookRefusedError"
    assert "TASKJET_WEBHOOK_ALLOW" in dead["error"]["message"]
    assert receiver.received == []
