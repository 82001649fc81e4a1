"""A chord's callback runs exactly once: a member's worker SIGKILLed mid-run, a member retried,
and the window between recording the last member and publishing the callback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.core.labels import WorkflowStep
from src.tasks.broker import chord, group
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually


async def _runs(broker: JetStreamBroker, key: str) -> int:
    return int(await broker.results.redis.get(f"test-count:{key}") or 0)


@pytest.mark.faults
@pytest.mark.settings(ack_wait_s=1.0)
async def test_chord_callback_runs_once_when_a_member_worker_is_killed_mid_run(
    broker: JetStreamBroker, start_worker: StartWorker, tmp_path: Path
) -> None:
    key, gate = uuid.uuid4().hex, tmp_path / "gate"
    started = [tmp_path / f"started-{i}" for i in range(3)]
    doomed = await start_worker()
    members = group(tasks.gated_value.si(i, str(started[i]), str(gate)) for i in range(3))
    handle = await chord(members, tasks.tally.s(key)).kiq()
    await eventually(lambda: all(p.exists() for p in started), what="members running")
    doomed.kill()  # SIGKILL to the worker and its process group: no last word
    await doomed.wait()
    gate.touch()
    await start_worker()
    result = await handle.wait_result(timeout=90)
    assert result.state == "SUCCESS", result
    assert result.return_value == [0, 1, 2]
    assert await _runs(broker, key) == 1


@pytest.mark.settings(ack_wait_s=1.0)
async def test_chord_callback_runs_once_when_members_are_retried(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = uuid.uuid4().hex
    await start_worker()
    members = group(tasks.flaky.si(f"{key}-{i}", i) for i in range(3))  # fail 0, 1, 2 times
    handle = await chord(members, tasks.tally.s(key)).kiq()
    result = await handle.wait_result(timeout=90)
    assert result.return_value == [1, 2, 3], "each member's last attempt number"
    assert await _runs(broker, key) == 1


async def test_a_step_end_told_again_after_a_crash_publishes_nothing_new(
    broker: JetStreamBroker,
    start_worker: StartWorker,
    js: JetStreamContext,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """A worker that recorded the last member but died before noting the callback as sent:
    the redelivered member tells the workflow again, which publishes the callback again under
    the same task and de-duplication ids, and JetStream drops it."""
    started, gate = tmp_path / "started", tmp_path / "gate"
    await start_worker()
    members = group(tasks.add.si(i, i) for i in range(2))
    handle = await chord(members, tasks.gated_value.s(str(started), str(gate))).kiq()
    await eventually(started.exists, what="callback running")
    record = await handle.record()
    callback, member = record.steps[-1], record.steps[0]
    assert member.task_id is not None
    await broker.results.redis.hdel(
        broker.layout.workflow_key(handle.workflow_id), f"d:{callback.id}"
    )
    before = (await js.stream_info(settings.stream)).state.last_seq
    await broker.workflows.engine.step_ended(
        member.task_id, WorkflowStep(handle.workflow_id, member.id)
    )
    assert (await handle.record()).steps[-1].task_id == callback.task_id, "sent again"
    assert (await js.stream_info(settings.stream)).state.last_seq == before, "and dropped"
    gate.touch()
    result = await handle.wait_result(timeout=60)
    assert result.return_value == [0, 2]
    callback_record = await broker.records.get(callback.task_id or "")
    assert callback_record is not None
    assert callback_record.attempts == 1


@pytest.mark.settings(redelivery_delay_s=0.3)
async def test_a_step_end_the_workflow_cannot_take_is_handed_back_and_told_again(
    broker: JetStreamBroker, start_worker: StartWorker, tmp_path: Path
) -> None:
    """The workflow's hash cannot be written when the first step ends: the step's message is
    handed back, not acked; its redelivery does not run the step again but tells the workflow,
    once the hash can be written, and the chain goes on."""
    started, gate = tmp_path / "started", tmp_path / "gate"
    worker = await start_worker()
    handle = await (tasks.gated_value.si(1, str(started), str(gate)) | tasks.add.s(1)).kiq()
    await eventually(started.exists, what="first step running")
    redis, key = broker.results.redis, broker.layout.workflow_key(handle.workflow_id)
    saved = await redis.hgetall(key)
    await redis.delete(key)
    await redis.set(key, "not a hash")  # every script call on it fails
    gate.touch()
    await eventually(lambda: "cannot tell workflow" in worker.output(), what="hand-back")
    await redis.delete(key)
    await redis.hset(key, mapping=saved)
    result = await handle.wait_result(timeout=60)
    assert (result.state, result.return_value) == ("SUCCESS", 2)
    first = (await handle.record()).steps[0]
    assert first.task_id is not None
    first_record = await broker.records.get(first.task_id)
    assert first_record is not None
    assert first_record.attempts == 1, "the redelivery did not run the step again"
