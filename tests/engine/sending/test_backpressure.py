"""Sending when the queue cannot take a task: a full stream and a too-large message are clear
errors (nothing queued is dropped, no record says a refused task waits), and a publish nobody
answered is sent again until the stream is back."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError
from taskiq.exceptions import SendTaskError

from src.config import Settings
from src.engine.backends import provisioning
from src.engine.broker import JetStreamBroker
from src.engine.core.errors import MessageTooLargeError, StreamFullError
from src.engine.core.layout import Layout
from src.engine.core.states import TaskState
from tests.api.conftest import api_client
from tests.support import tasks
from tests.support.processes import eventually

TYPED = "tests.support.tasks:typed"


@pytest.mark.settings(stream_max_msgs=3)
async def test_a_full_queue_refuses_new_tasks_and_keeps_the_queued_ones(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    queued = [await tasks.echo.kiq(i) for i in range(3)]
    with pytest.raises(StreamFullError, match="TASKJET_STREAM_MAX_MSGS"):
        await tasks.echo.kiq("one too many")
    with pytest.raises(StreamFullError):
        await tasks.echo.kiq_many([(i,) for i in range(2)])
    assert (await js.stream_info(settings.stream)).state.messages == 3, "nothing dropped"
    counts = await broker.records.counts()
    assert counts[TaskState.PENDING] == 3, "no record for a task that was refused"
    assert {(await broker.records.get(h.task_id)).state for h in queued} == {TaskState.PENDING}  # type: ignore[union-attr]


@pytest.mark.settings(stream_max_bytes=16 * 1024)
async def test_a_queue_over_its_byte_cap_refuses_new_tasks_and_keeps_the_queued_ones(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    queued = []

    async def fill() -> None:
        for _ in range(100):  # 100 tasks of 1 KiB cannot fit in 16 KiB
            queued.append(await tasks.echo.kiq("x" * 1024))

    with pytest.raises(StreamFullError, match="TASKJET_STREAM_MAX_BYTES"):
        await fill()
    held = (await js.stream_info(settings.stream)).state
    assert 0 < held.messages == len(queued) < 100, "every accepted task is still queued"
    assert held.bytes <= 16 * 1024
    counts = await broker.records.counts()
    assert counts[TaskState.PENDING] == len(queued), "no record for a task that was refused"


@pytest.mark.settings(stream_max_msgs=1)
async def test_the_api_answers_503_with_retry_after_when_the_queue_is_full(
    settings: Settings,
) -> None:
    async with api_client(settings) as client:
        body = {"task": TYPED, "kwargs": {"name": "x"}}
        assert (await client.post("/api/v1/tasks", json=body)).status_code == 202
        full = await client.post("/api/v1/tasks", json=body)
    assert full.status_code == 503
    assert full.json()["error"]["code"] == "queue_full"
    assert full.headers["Retry-After"] == "5"


async def test_a_message_over_the_nats_limit_is_refused_at_dispatch(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    with pytest.raises(MessageTooLargeError, match=r"over the \d+ bytes a NATS message"):
        await tasks.echo.kiq("x" * 1_100_000)
    assert (await js.stream_info(settings.stream)).state.messages == 0


@pytest.mark.settings(api_max_body_bytes=4_000_000)
async def test_the_api_answers_413_for_a_message_over_the_nats_limit(settings: Settings) -> None:
    async with api_client(settings) as client:
        body = {"task": "src.tasks.example:example_task", "args": [{"blob": "x" * 1_100_000}]}
        response = await client.post("/api/v1/tasks", json=body)
    assert response.status_code == 413
    assert "NATS message" in response.json()["error"]["message"]


@pytest.mark.settings(publish_retry_s=60)
async def test_a_publish_nobody_answers_is_sent_again_until_the_stream_is_back(
    broker: JetStreamBroker,
    js: JetStreamContext,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As when a cluster elects a new stream leader: no answer for a while, then the stream."""
    layout = Layout.from_settings(settings)
    await js.delete_stream(settings.stream)
    sending = asyncio.ensure_future(tasks.echo.kiq("patient"))
    await eventually(
        lambda: any("not answered" in r.getMessage() for r in caplog.records),
        what="the first publish goes unanswered (no stream)",
    )
    assert not sending.done()
    await provisioning.ensure_stream(js, provisioning.stream_config(settings, layout))
    handle = await asyncio.wait_for(sending, 60)
    assert (await js.stream_info(settings.stream)).state.messages == 1
    assert (await broker.records.get(handle.task_id)) is not None


@pytest.mark.settings(publish_retry_s=0)
async def test_without_retries_an_unanswered_publish_fails_at_once(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    await js.delete_stream(settings.stream)
    with pytest.raises(SendTaskError) as caught:
        await tasks.echo.kiq("impatient")
    assert isinstance(caught.value.__cause__, NoStreamResponseError)
    counts = await broker.records.counts()
    assert counts[TaskState.PENDING] == 0
