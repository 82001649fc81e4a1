"""`kiq_many` puts its publishes on the wire before the first answer is in, and still learns the
fate of each: a refused one raises, an unanswered one is sent again, and only tasks that were
queued get a record."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.js import JetStreamContext

from src.config import Settings
from src.engine.backends import provisioning
from src.engine.broker import JetStreamBroker
from src.engine.core.errors import StreamFullError
from src.engine.core.layout import Layout
from src.engine.core.states import TaskState
from src.engine.sending.pubacks import PubAcks
from tests.support import tasks
from tests.support.processes import eventually


@pytest.mark.settings(stream_max_msgs=3, connect_timeout_s=30)
async def test_a_batch_partly_refused_raises_and_records_only_what_was_queued(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    started = time.monotonic()
    with pytest.raises(StreamFullError, match="TASKJET_STREAM_MAX_MSGS"):
        await tasks.echo.kiq_many([(i,) for i in range(5)])
    assert time.monotonic() - started < 10, "a refusal is answered, not waited out"
    assert (await js.stream_info(settings.stream)).state.messages == 3
    counts = await broker.records.counts()
    assert counts[TaskState.PENDING] == 3, "a record for each queued task, none for the others"


@pytest.mark.settings(publish_retry_s=60)
async def test_a_batch_nobody_answers_is_sent_again_until_the_stream_is_back(
    broker: JetStreamBroker,
    js: JetStreamContext,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    layout = Layout.from_settings(settings)
    await js.delete_stream(settings.stream)
    sending = asyncio.ensure_future(tasks.echo.kiq_many([(i,) for i in range(50)]))
    await eventually(lambda: _unanswered(caplog), what="the publishes went unanswered (no stream)")
    assert not sending.done()
    await provisioning.ensure_stream(js, provisioning.stream_config(settings, layout))
    handles = await asyncio.wait_for(sending, 60)
    assert (await js.stream_info(settings.stream)).state.messages == 50, "each stored once"
    records = await broker.records.get_many([h.task_id for h in handles])
    assert all(r is not None and r.state is TaskState.PENDING for r in records)


async def test_lone_and_batched_publishes_share_the_answers_subscription(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    handles = await asyncio.gather(
        *(tasks.echo.kiq(i) for i in range(200)),
        tasks.echo.kiq_many([(i,) for i in range(200)]),
    )
    assert (await js.stream_info(settings.stream)).state.messages == 400
    assert (await broker.records.counts())[TaskState.PENDING] == 400
    assert len(handles) == 201


def _unanswered(caplog: pytest.LogCaptureFixture) -> bool:
    return any("not answered" in record.getMessage() for record in caplog.records)


async def test_an_answer_that_never_comes_fails_after_the_answer_time(
    broker: JetStreamBroker,
) -> None:
    """A subscriber that takes the publish but never answers (as a stream leader that froze
    does): the answer fails with TimeoutError after `answer_s`, not never."""
    nc = broker.nc
    silent = await nc.subscribe("taskjet-test.silent.>")
    pubacks = PubAcks(lambda: 0.3)
    started = time.monotonic()
    answer = await pubacks.publish(nc, "taskjet-test.silent.one", b"x", {})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(answer, 30)
    assert 0.3 <= time.monotonic() - started < 10
    assert (await silent.next_msg(timeout=5)).data == b"x", "it was published"
    answered = await pubacks.publish(nc, "taskjet-test.silent.two", b"y", {})
    answered.cancel()  # nobody waits any more: forgotten, and the sweeping stops
    await eventually(lambda: pubacks._sweep is None, what="no timer left behind")
    await silent.unsubscribe()


@pytest.mark.settings(stream_max_msgs=400, connect_timeout_s=30)
async def test_a_batch_of_many_chunks_records_each_queued_task_and_raises_for_the_rest(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    """Published a chunk at a time, the answers and records of one chunk overlapping the
    publishing of the next: the stream takes 400 of 600, each once, each with its record."""
    with pytest.raises(StreamFullError):
        await tasks.echo.kiq_many([(i,) for i in range(600)])
    assert (await js.stream_info(settings.stream)).state.messages == 400
    assert (await broker.records.counts())[TaskState.PENDING] == 400
