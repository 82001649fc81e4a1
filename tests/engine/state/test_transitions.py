"""Record writes are ordered by what they describe (dispatch, attempt), not by arrival: the
transition script on a real Redis, then the races it exists for, forced through real workers."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from taskiq.message import TaskiqMessage

from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from src.engine.state.records import TaskRecords
from src.engine.state.transitions import Transition, Written
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually

RESULT = b'{"is_err":false,"return_value":1,"execution_time":0.0,"labels":{},"error":null}'


def _message(dispatch: int = 1) -> TaskiqMessage:
    return TaskiqMessage(
        task_id=uuid.uuid4().hex,
        task_name="t",
        labels={"dispatch": dispatch},
        args=[1],
        kwargs={},
    )


def _start(message: TaskiqMessage, attempt: int = 1, seq: int = 7, dispatch: int = 1) -> Transition:
    return Transition(
        message.task_id, "t", TaskState.STARTED, "start", {"worker": "w"},
        dispatch=dispatch, attempt=attempt, seq=seq,
    )  # fmt: skip


def _final(
    message: TaskiqMessage,
    state: TaskState = TaskState.SUCCESS,
    attempt: int = 1,
    dispatch: int = 1,
) -> Transition:
    return Transition(
        message.task_id, "t", state, "final", {"finished_at": 1.0},
        dispatch=dispatch, attempt=attempt, result=RESULT,
    )  # fmt: skip


async def _write(records: TaskRecords, transition: Transition) -> Written:
    (written,) = await records.apply([transition])
    return written


async def _state(broker: JetStreamBroker, task_id: str) -> TaskState:
    record = await broker.records.get(task_id)
    assert record is not None
    return record.state


async def _has_result(broker: JetStreamBroker, task_id: str) -> bool:
    return bool(await broker.results.redis.exists(broker.layout.result_key(task_id)))


async def test_a_late_pending_fills_in_but_never_moves_a_finished_record(
    broker: JetStreamBroker,
) -> None:
    records, message = broker.records, _message()
    await _write(records, _start(message))
    await _write(records, _final(message))
    written = await _write(
        records, records.queued(message, "default", b"{}", queued_at=time.time())
    )
    assert written == Written(TaskState.SUCCESS, "filled")
    record = await records.get(message.task_id)
    assert record is not None
    assert record.state is TaskState.SUCCESS
    assert (record.queue, record.args) == ("default", [1]), "what only the sender knows is added"
    assert await _has_result(broker, message.task_id)
    assert (await records.counts())[TaskState.PENDING] == 0


async def test_a_late_start_of_the_same_message_never_hides_its_outcome(
    broker: JetStreamBroker,
) -> None:
    records, message = broker.records, _message()
    await _write(records, records.queued(message, "default", b"{}", queued_at=time.time()))
    await _write(records, _start(message, seq=7))
    await _write(records, _final(message))
    for attempt in (1, 2):
        written = await _write(records, _start(message, attempt=attempt, seq=7))
        assert written == Written(TaskState.SUCCESS, "finished"), "acked, not run again"
    assert await _state(broker, message.task_id) is TaskState.SUCCESS
    assert await _has_result(broker, message.task_id)


async def test_another_message_of_the_same_dispatch_after_the_end_is_a_new_run(
    broker: JetStreamBroker,
) -> None:
    """The same task id sent again after the de-duplication window (same dispatch number,
    another stream sequence) runs again, and the record follows the new run."""
    records, message = broker.records, _message()
    await _write(records, _start(message, seq=7))
    await _write(records, _final(message, TaskState.FAILURE))
    written = await _write(records, _start(message, seq=99))
    assert written == Written(TaskState.FAILURE, "applied")
    record = await records.get(message.task_id)
    assert record is not None
    assert (record.state, record.finished_at) == (TaskState.STARTED, None)
    assert not await _has_result(broker, message.task_id), "the previous outcome is gone"


async def test_a_new_dispatch_starts_over_whichever_write_comes_first(
    broker: JetStreamBroker,
) -> None:
    records = broker.records
    for first_the_worker in (False, True):
        message = _message()
        await _write(records, _start(message))
        await _write(records, _final(message, TaskState.DEAD))
        again = _message(dispatch=2).model_copy(update={"task_id": message.task_id})
        pending = records.queued(again, "default", b"{}", queued_at=time.time())
        if first_the_worker:
            assert (await _write(records, _start(again, dispatch=2))).applied
            assert (await _write(records, pending)).code == "filled"
            assert await _state(broker, message.task_id) is TaskState.STARTED
        else:
            assert (await _write(records, pending)).applied
            assert await _state(broker, message.task_id) is TaskState.PENDING
        record = await records.get(message.task_id)
        assert record is not None
        assert (record.dispatch, record.finished_at, record.error) == (2, None, None)
        assert not await _has_result(broker, message.task_id)


async def test_writes_about_an_older_dispatch_are_dropped(broker: JetStreamBroker) -> None:
    records = broker.records
    message = _message(dispatch=2)
    await _write(records, records.queued(message, "default", b"{}", queued_at=time.time()))
    assert (await _write(records, _start(message, dispatch=1))).code == "stale"
    assert (await _write(records, _final(message, dispatch=1))).code == "stale"
    assert await _state(broker, message.task_id) is TaskState.PENDING
    assert not await _has_result(broker, message.task_id), "a stale result is not stored"


async def test_older_attempts_never_overwrite_newer_ones(broker: JetStreamBroker) -> None:
    records, message = broker.records, _message()
    await _write(records, _start(message, attempt=2))
    retrying = Transition(
        message.task_id, "t", TaskState.RETRYING, "advance", dispatch=1, attempt=1
    )
    assert (await _write(records, retrying)).code == "ignored"
    assert (await _write(records, _start(message, attempt=1))).code == "older"
    assert await _state(broker, message.task_id) is TaskState.STARTED
    await _write(records, _final(message, TaskState.SUCCESS, attempt=2))
    assert (await _write(records, _final(message, TaskState.FAILURE, attempt=1))).code == "older"
    assert await _state(broker, message.task_id) is TaskState.SUCCESS
    # Within one attempt the final state of a run may still change (the run really ended so).
    assert (await _write(records, _final(message, TaskState.FAILURE, attempt=2))).applied


async def test_progress_and_cancel_never_move_a_final_state(broker: JetStreamBroker) -> None:
    records, message = broker.records, _message()
    await _write(records, _start(message))
    cancel = Transition(message.task_id, "t", TaskState.CANCELLED)
    assert (await _write(records, cancel)).applied, "a running task can be cancelled"
    assert (await _write(records, _start(message))).code == "finished", "and is not restarted"
    progress = Transition(message.task_id, "t", TaskState.PROGRESS, dispatch=1, attempt=1)
    assert (await _write(records, progress)).code == "ignored"
    assert await _state(broker, message.task_id) is TaskState.CANCELLED
    assert (await records.counts())[TaskState.PROGRESS] == 0


# The races, through real workers ---------------------------------------------------------------
async def test_pending_written_after_the_worker_finished_leaves_the_record_final(
    broker: JetStreamBroker, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender's PENDING write is held until the worker has stored the result."""
    await start_worker()
    original = broker.records.submit

    async def late(transition: Transition) -> Written:
        if transition.mode == "create":

            async def finished() -> bool:
                return await _has_result(broker, transition.task_id)

            await eventually(finished, timeout_s=60, what="worker finished first")
        return await original(transition)

    monkeypatch.setattr(broker.records, "submit", late)
    for task, args, final in (
        (tasks.echo, (1,), TaskState.SUCCESS),
        (tasks.decline, (5,), TaskState.DEAD),
    ):
        handle = await task.kiq(*args)
        await handle.wait_result(timeout=60)
        record = await broker.records.get(handle.task_id)
        assert record is not None
        assert record.state is final
        assert record.queue == "default"
        assert record.queued_at is not None
        assert record.started_at is not None
        assert record.queued_at <= record.started_at, "queued_at is the dispatch time"


@pytest.mark.timeout(400)  # 5,000 tasks on a shared 2-core machine: its own waits allow 300 s
async def test_burst_every_record_agrees_with_its_result(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    """5,000 tasks, 500 in flight at a time, two worker processes: no record says PENDING
    (or anything but SUCCESS) once its result is stored."""
    await start_worker(workers=2)
    total, in_flight = 5000, asyncio.Semaphore(500)

    async def send(i: int) -> Any:
        async with in_flight:
            return await tasks.echo.kiq(i)

    handles = await asyncio.gather(*(send(i) for i in range(total)))
    ids = [h.task_id for h in handles]

    async def all_stored() -> bool:
        async with broker.results.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.exists(broker.layout.result_key(task_id))
            return all(await pipe.execute())

    await eventually(all_stored, timeout_s=300, interval_s=0.5, what="every result stored")
    records = []
    for start in range(0, total, 500):
        records.extend(await broker.records.get_many(ids[start : start + 500]))
    wrong = [
        (i, r.state if r else None)
        for i, r in zip(ids, records, strict=True)
        if not r or r.state is not TaskState.SUCCESS
    ]
    assert wrong == []
    counts = await broker.records.counts()
    assert counts[TaskState.SUCCESS] == total
    assert counts[TaskState.PENDING] == counts[TaskState.STARTED] == 0
