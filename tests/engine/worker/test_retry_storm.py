"""A retry storm does not starve new work (`worker/retry_share.py`), on a real worker: while
300 tasks fail and retry again and again, new tasks sent during the storm all run, and the
retries keep their share meanwhile."""

from __future__ import annotations

import uuid

import pytest

from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from src.testing import result_of
from tests.conftest import StartWorker
from tests.support import storm
from tests.support.processes import eventually

STORM = 300
NEW = 200


@pytest.mark.settings(worker_concurrency=10)
async def test_new_tasks_start_while_retries_are_still_pending(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    order = f"test-storm:{uuid.uuid4().hex}"
    redis = broker.results.redis
    await start_worker("tests.support.storm")
    await storm.outage.kiq_many([(order,)] * STORM)

    async def storming() -> bool:
        """Every failing task ran once and retries are running: the storm is on."""
        return int(await redis.llen(order)) > 2 * STORM

    await eventually(storming, timeout_s=120, what="a retry storm")
    handles = await storm.fresh.kiq_many([(order, i) for i in range(NEW)])
    assert [await result_of(h, timeout_s=120) for h in handles] == list(range(NEW))

    runs = [r.decode() for r in await redis.lrange(order, 0, -1)]
    first, last = runs.index("N"), len(runs) - 1 - runs[::-1].index("N")
    assert runs.count("N") == NEW
    assert runs[:first].count("R") > 2 * STORM  # the storm came first
    assert "R" in runs[first:last]  # retries went on while the new tasks ran: not starved
    # ... and none of the failing tasks ran out of retries: the new work did not wait for them.
    counts = await broker.records.counts()
    assert counts[TaskState.FAILURE] == counts[TaskState.DEAD] == 0
    status = await broker.monitor.status()
    assert status.queues["retry"] > 0
    assert 0 < status.retry_ratio <= 1
