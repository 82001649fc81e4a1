"""The foundation workflow through real `taskiq worker` processes, NATS and Redis."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.core.errors import EncodeError, ResultNotSerialisableError, ResultTooLargeError
from src.engine.core.states import TaskState
from src.tasks.broker import broker as app_broker
from tests.conftest import StartWorker
from tests.support import tasks


def test_default_and_custom_task_names() -> None:
    assert tasks.echo.task_name == "tests.support.tasks:echo"
    assert tasks.named.task_name == "custom_name"
    assert app_broker.find_task("custom_name") is tasks.named


def test_register_task_keyword_arguments_become_labels() -> None:
    assert tasks.labelled.labels == {"colour": "blue", "sizes": [1, 2], "meta": {"team": "billing"}}


async def test_dispatch_and_wait_result(broker: JetStreamBroker, start_worker: StartWorker) -> None:
    await start_worker()
    handle = await tasks.echo.kiq({"nested": [1, 2, {"x": None}]})
    assert handle.task_id
    result = await handle.wait_result(timeout=30)
    assert not result.is_err
    assert result.return_value == {"nested": [1, 2, {"x": None}]}
    assert result.error is None


async def test_custom_name_runs(broker: JetStreamBroker, start_worker: StartWorker) -> None:
    await start_worker()
    result = await (await tasks.named.kiq()).wait_result(timeout=30)
    assert result.return_value == "named"


async def test_labels_travel_as_json(broker: JetStreamBroker, start_worker: StartWorker) -> None:
    await start_worker()
    handle = await tasks.labelled.kicker().with_labels(extra={"deep": [1.5, True, None]}).kiq()
    result = await handle.wait_result(timeout=30)
    assert result.return_value == {
        "colour": "blue",
        "sizes": [1, 2],
        "meta": {"team": "billing"},
        "extra": {"deep": [1.5, True, None]},
        "attempt": 1,
        "redelivered": False,
    }


async def test_task_exception_is_captured(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    result = await (await tasks.decline.kiq(42)).wait_result(timeout=30)
    assert result.is_err
    assert result.return_value is None
    assert isinstance(result.error, tasks.PaymentDeclinedError)
    assert str(result.error) == "card declined for 42"


async def test_thousand_tasks_all_correct(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker(workers=2)
    handles = await asyncio.gather(*(tasks.echo.kiq(i) for i in range(1000)))
    assert len({h.task_id for h in handles}) == 1000
    results = await asyncio.gather(*(h.wait_result(timeout=120) for h in handles))
    assert [r.return_value for r in results] == list(range(1000))
    assert not any(r.is_err for r in results)


async def test_fire_and_forget(broker: JetStreamBroker, start_worker: StartWorker) -> None:
    key = uuid.uuid4().hex
    await tasks.count.kiq(key)  # no handle kept, nobody waits
    await start_worker()
    redis = broker.results.redis

    async def counted() -> bytes | None:
        return await redis.get(f"test-count:{key}")

    from tests.support.processes import eventually

    assert await eventually(counted, what="fire-and-forget task ran") == b"1"


async def test_duplicate_publish_executes_once(
    broker: JetStreamBroker, settings: Settings, start_worker: StartWorker
) -> None:
    key = uuid.uuid4().hex
    task_id = uuid.uuid4().hex
    first = await tasks.count.kicker().with_task_id(task_id).kiq(key)
    second = await tasks.count.kicker().with_task_id(task_id).kiq(key)  # e.g. a client retry
    assert first.task_id == second.task_id == task_id
    info = await broker.js.stream_info(settings.stream)
    assert info.state.messages == 1, "the server de-duplicated the second publish"

    await start_worker()
    assert (await first.wait_result(timeout=30)).return_value == 1
    # A later task on the same queue ran, so the duplicate (had it been stored) would have too.
    assert (await (await tasks.echo.kiq("after")).wait_result(timeout=30)).return_value == "after"
    assert await broker.results.redis.get(f"test-count:{key}") == b"1"


async def test_results_are_json_with_expiry(
    broker: JetStreamBroker, settings: Settings, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.echo.kiq("stored")
    await handle.wait_result(timeout=30)
    key = broker.layout.result_key(handle.task_id)
    raw = await broker.results.redis.get(key)
    stored = orjson.loads(raw)
    assert stored["return_value"] == "stored"
    assert stored["is_err"] is False
    ttl = await broker.results.redis.ttl(key)
    assert 0 < ttl <= settings.result_ttl_s


async def test_unserialisable_return_value_becomes_clear_error(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.unserialisable_result.kiq()
    result = await handle.wait_result(timeout=30)
    assert result.is_err
    assert isinstance(result.error, ResultNotSerialisableError)
    assert "not JSON-serialisable" in str(result.error)
    record = await broker.records.get(handle.task_id)
    assert record is not None
    assert record.state is TaskState.FAILURE, "the record agrees with the result"
    assert record.error is not None
    assert record.error.type == "ResultNotSerialisableError"


@pytest.mark.settings(result_max_bytes=10_000)
async def test_a_result_over_the_size_limit_fails_the_task_clearly(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    assert (await (await tasks.big_result.kiq(9_000)).wait_result(timeout=30)).return_value
    handle = await tasks.big_result.kiq(20_000)
    result = await handle.wait_result(timeout=30)
    assert isinstance(result.error, ResultTooLargeError)
    assert "over TASKJET_RESULT_MAX_BYTES (10000)" in str(result.error)
    record = await broker.records.get(handle.task_id)
    assert record is not None
    assert record.state is TaskState.FAILURE


async def test_unserialisable_argument_is_refused_at_dispatch(broker: JetStreamBroker) -> None:
    with pytest.raises(EncodeError, match="JSON-serialisable"):
        await tasks.echo.kiq(object())


async def test_wait_result_times_out(broker: JetStreamBroker) -> None:
    from taskiq.exceptions import TaskiqResultTimeoutError

    handle = await tasks.echo.kiq("nobody runs me")
    with pytest.raises(TaskiqResultTimeoutError):
        await handle.wait_result(timeout=0.2)


async def test_result_readable_from_another_process_broker(
    broker: JetStreamBroker, settings: Settings, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.echo.kiq("shared")
    await handle.wait_result(timeout=30)
    other = JetStreamBroker(settings)
    await other.startup()
    try:
        assert (await other.results.get_result(handle.task_id)).return_value == "shared"
    finally:
        await other.shutdown()


async def test_stock_cli_options(broker: JetStreamBroker, start_worker: StartWorker) -> None:
    """`--reload` and `--max-async-tasks` are the stock taskiq CLI's and keep working."""
    await start_worker(extra=("--reload", "--max-async-tasks", "3"))
    handles = [await tasks.nap.kiq(0.05) for _ in range(9)]
    results = [await h.wait_result(timeout=30) for h in handles]
    assert [r.return_value for r in results] == [0.05] * 9


async def test_kiq_many_dispatches_a_batch(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    handles = await tasks.echo.kiq_many([(i,) for i in range(300)] + [{"value": "kw"}])
    assert len({h.task_id for h in handles}) == 301
    record = await broker.records.get(handles[0].task_id)
    assert record is not None, "records are written for the batch"
    results = await asyncio.gather(*(h.wait_result(timeout=60) for h in handles))
    assert [r.return_value for r in results] == [*range(300), "kw"]
