"""The sample application's own tests: its tasks run on a real worker, against private NATS
and Redis servers started once for the session."""

from __future__ import annotations

import pytest
import shop_tasks

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.testing import StartWorker, record_of, result_of
from src.testing_inprocess import run_inline

pytestmark = pytest.mark.taskjet_settings(worker_modules="shop_tasks")


async def test_a_reservation_runs_on_a_worker(
    taskjet_broker: JetStreamBroker, taskjet_worker: StartWorker
) -> None:
    await taskjet_worker()
    handle = await shop_tasks.reserve.kiq("apple", 3)
    assert await result_of(handle) == {"sku": "apple", "reserved": 3}
    record = await record_of(taskjet_broker, handle.task_id)
    assert record.state == "SUCCESS"
    assert record.args == ["apple", 3]


async def test_an_unavailable_item_fails_with_the_task_s_error(
    taskjet_broker: JetStreamBroker, taskjet_worker: StartWorker
) -> None:
    await taskjet_worker()
    handle = await shop_tasks.reserve.kiq("pear", 1)
    with pytest.raises(Exception, match="only 0 pear left") as failed:
        await result_of(handle)
    assert type(failed.value).__name__ == "OutOfStockError"
    record = await record_of(taskjet_broker, handle.task_id)
    assert record.state in {"FAILURE", "DEAD"}


@pytest.mark.taskjet_settings(worker_modules="shop_tasks", redis_prefix="shop-a")
async def test_each_test_has_its_own_prefixes(taskjet_settings: Settings) -> None:
    assert taskjet_settings.redis_prefix == "shop-a"
    assert taskjet_settings.stream.startswith("T")


async def test_a_reservation_runs_in_process_without_servers() -> None:
    assert await run_inline(shop_tasks.reserve, "apple", 2) == {"sku": "apple", "reserved": 2}
    with pytest.raises(shop_tasks.OutOfStockError, match="only 0 pear left"):
        await run_inline(shop_tasks.reserve, "pear", 1)
