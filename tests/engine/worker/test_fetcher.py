"""The fetch loop against a real JetStream: every lane asked in one round trip, nothing kept
when one of them fails, and tasks fetched ahead (while tasks run long) never held from a worker
with room."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from taskiq import AsyncTaskiqTask

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.core.errors import ConsumerGoneError
from src.engine.core.priority import LANES, Lane
from src.engine.core.states import TaskState
from src.engine.worker.pulls import pull_lanes, pull_now, pull_wait
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually


@pytest.mark.settings(ack_wait_s=120)  # redelivered without a hand-back only after this
async def test_a_fill_hands_back_what_it_fetched_when_one_lane_fails(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    """One fill asks every lane at once; when one lane's pull fails (its consumer was deleted),
    the tasks the other lanes brought are handed back at once, not held until `ack_wait`."""
    fetching = broker.fetching
    subs = {lane: await fetching._subscribe("default", lane) for lane in LANES}
    sent = {(await tasks.echo.kiq(i)).task_id for i in range(3)}
    await js.delete_consumer(settings.stream, broker.layout.consumer("default", "low"))
    with pytest.raises(ConsumerGoneError):
        await pull_lanes(broker.nc, subs, (), 10, 5.0)

    again: list[Msg] = []

    async def delivered_again() -> bool:
        again.extend(await pull_now(broker.nc, subs["normal"], 10, 1.0))
        return len(again) >= len(sent)

    await eventually(delivered_again, timeout_s=30, what="the fetched tasks back in the queue")
    assert {m.headers["Nats-Msg-Id"].split(":")[0] for m in again if m.headers} == sent
    assert all(m.metadata.num_delivered == 2 for m in again), "handed back, then delivered anew"
    for msg in again:
        await msg.ack()


async def test_a_lingering_pull_brings_the_task_sent_while_it_waits(
    broker: JetStreamBroker,
) -> None:
    """An answer meant for an earlier request (the 404 of a no-wait pull nobody read) does
    not end the wait: the task sent afterwards is what the lingering pull brings."""
    subscription = await broker.fetching._subscribe("default", "normal")
    stale = b'{"batch":1,"no_wait":true}'
    await broker.nc.publish(subscription._nms, stale, reply=subscription._deliver)
    # Not flushed first: its answer cannot be in before the lingering pull starts waiting.
    waiting = asyncio.create_task(pull_wait(broker.nc, subscription, 30.0))
    handle = await tasks.echo.kiq("x")
    (msg,) = await asyncio.wait_for(waiting, 30)
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"].split(":")[0] == handle.task_id
    await msg.ack()


async def test_a_lingering_pull_ends_empty_when_the_server_expires_it(
    broker: JetStreamBroker,
) -> None:
    subscription = await broker.fetching._subscribe("default", "normal")
    assert await pull_wait(broker.nc, subscription, 0.2) == []


async def test_a_lingering_pull_on_a_deleted_consumer_says_it_is_gone(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    subscription = await broker.fetching._subscribe("default", "normal")
    await js.delete_consumer(settings.stream, broker.layout.consumer("default", "normal"))
    with pytest.raises(ConsumerGoneError):
        await pull_wait(broker.nc, subscription, 5.0)


@pytest.mark.settings(ack_wait_s=120)  # redelivered without a hand-back only after this
async def test_a_lingering_pull_given_up_hands_back_the_task_it_brought(
    broker: JetStreamBroker,
) -> None:
    """A lingering pull that brought a task the loop had not taken yet when its pulls were
    given up (a pause, a restart of the loop, shutdown) hands the task back at once."""
    fetching = broker.fetching
    subscription = await fetching._subscribe("default", "normal")
    waiting: dict[Lane, asyncio.Task[list[Msg]]] = {
        "normal": asyncio.create_task(pull_wait(broker.nc, subscription, 30.0))
    }
    handle = await tasks.echo.kiq("brought")
    (brought,) = await asyncio.wait_for(asyncio.shield(waiting["normal"]), 30)
    fetching._inflight.reserved += 1  # as `_linger` counts an open pull
    await fetching._forget_waiting(waiting)

    again: list[Msg] = []

    async def handed_back() -> bool:
        again.extend(await pull_now(broker.nc, subscription, 1, 1.0))
        return bool(again)

    await eventually(handed_back, timeout_s=30, what="the task back in the queue at once")
    (msg,) = again
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"].split(":")[0] == handle.task_id
    assert msg.metadata.num_delivered == 2, "handed back, then delivered anew"
    assert brought.metadata.sequence.stream == msg.metadata.sequence.stream
    await msg.ack()


async def _long_task_ahead_of_three(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> tuple[AsyncTaskiqTask[Any], list[AsyncTaskiqTask[Any]]]:
    """A one-slot worker whose tasks run long: a 60 s task takes its slot and three more tasks
    are fetched ahead of it. They are held, not started: still PENDING, and unacked. (All four
    are sent while a gated task holds the slot, so the fill that follows its end brings all
    four at once.)"""
    await (await tasks.nap.kiq(0.5)).wait_result(timeout=30)  # its tasks now run long
    key = uuid.uuid4().hex
    gate = await tasks.gated.kiq(key)

    async def gate_runs() -> bool:
        record = await broker.records.get(gate.task_id)
        return record is not None and record.state is TaskState.PROGRESS  # it reported a step

    await eventually(gate_runs, what="a gated task in the only slot")
    blocker = await tasks.nap.kiq(60)
    echoes = [await tasks.echo.kiq(i) for i in range(3)]
    await broker.results.redis.set(f"test-gate:{key}", 1)
    assert (await gate.wait_result(timeout=30)).return_value == key
    await eventually(
        lambda: _unacked(broker, js, settings, 4), what="the long task running, 3 held ahead"
    )
    for handle in echoes:
        assert (await broker.records.get(handle.task_id)).state is TaskState.PENDING
    return blocker, echoes


async def _unacked(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings, n: int
) -> bool:
    info = await js.consumer_info(settings.stream, broker.layout.consumer("default"))
    return info.num_ack_pending == n


@pytest.mark.settings(ack_wait_s=60)  # not handed back, a held task would wait behind the nap
async def test_tasks_fetched_ahead_go_to_a_worker_with_room_soon(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings, start_worker: StartWorker
) -> None:
    """Tasks a busy worker fetched ahead of its free room go back to the queue when it cannot
    start them soon: a worker with room runs them while the long task still runs."""
    await start_worker(extra=("--max-async-tasks", "1"))
    blocker, echoes = await _long_task_ahead_of_three(broker, js, settings)
    await start_worker()
    for i, handle in enumerate(echoes):
        assert (await handle.wait_result(timeout=30)).return_value == i
    running = await broker.records.get(blocker.task_id)
    assert running.state is TaskState.STARTED, "the long task still runs"
    for handle in echoes:
        assert (await broker.records.get(handle.task_id)).worker != running.worker
    await _cancelled(broker, blocker)


async def _cancelled(broker: JetStreamBroker, task: AsyncTaskiqTask[Any]) -> None:
    """The long task's end, so that its worker stops at once."""
    await broker.control.cancel(task.task_id)
    assert (await task.wait_result(timeout=30)).is_err
