"""Starting a workflow survives its starter dying at any point: the start message, run by a
worker, stores what is missing and dispatches what was not sent; each step runs once."""

from __future__ import annotations

import uuid

import pytest

from src.engine.broker import JetStreamBroker
from src.engine.workflows.engine import START_TASK
from src.tasks.broker import chain, group
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually


async def _runs(broker: JetStreamBroker, key: str) -> int:
    return int(await broker.results.redis.get(f"test-count:{key}") or 0)


@pytest.mark.parametrize(
    "stored", [False, True], ids=["died-after-announcing", "died-after-storing"]
)
async def test_a_workflow_whose_starter_died_runs_from_its_start_message(
    broker: JetStreamBroker, start_worker: StartWorker, stored: bool
) -> None:
    key = uuid.uuid4().hex
    engine = broker.workflows.engine
    canvas = chain(tasks.counted.si(key), tasks.add.si(2, 3))
    workflow_id, spec = await engine.announce(canvas)  # ... and the starter died here
    if stored:
        assert await engine.store(workflow_id, spec)  # ... or here, before any step was sent
        assert (await engine.get(workflow_id)).state == "RUNNING"
        assert not await engine.store(workflow_id, spec), "stored once"
    await start_worker()
    result = await broker.workflows.handle(workflow_id).wait_result(timeout=60)
    assert (result.state, result.return_value) == ("SUCCESS", 5)
    assert await _runs(broker, key) == 1


async def test_a_started_workflow_runs_each_step_once_though_driven_twice(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    """The start dispatches the first steps, and its start message drives them again: the
    second publish of each is dropped (same task ids, same de-duplication ids)."""
    keys = [uuid.uuid4().hex for _ in range(3)]
    await start_worker()
    handle = await group(tasks.counted.si(k) for k in keys).kiq()
    result = await handle.wait_result(timeout=60)
    assert (result.state, result.return_value) == ("SUCCESS", [1, 1, 1])
    assert [await _runs(broker, k) for k in keys] == [1, 1, 1]

    async def start_ran() -> bool:
        page = await broker.records.page(task_name=START_TASK)
        return [r.state.value for r in page.records] == ["SUCCESS"]

    await eventually(start_ran, what="the start message run")
    assert [await _runs(broker, k) for k in keys] == [1, 1, 1]
