"""Admission of what a worker fetches: bad labels, malformed and oversized messages, and fetch
loops that keep running whatever arrives. Messages are published straight to NATS, as anything
that can reach NATS could."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from nats.js import JetStreamContext

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.core.errors import InvalidTaskError, LabelError
from src.engine.core.layout import Layout
from src.engine.core.states import TaskState
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually


def _body(
    task_name: str, labels: dict[str, Any], args: list[Any] | None = None
) -> tuple[str, bytes]:
    task_id = uuid.uuid4().hex
    body = {
        "task_id": task_id,
        "task_name": task_name,
        "labels": labels,
        "args": args or [1],
        "kwargs": {},
    }
    return task_id, orjson.dumps(body)


async def _dead_entry(broker: JetStreamBroker, task_id: str) -> Any:
    async def found() -> Any:
        return next((e for e in await broker.dlq.entries(limit=1000) if e.task_id == task_id), None)

    return await eventually(found, timeout_s=60, what=f"dead letter of {task_id}")


@pytest.mark.parametrize(
    ("labels", "named"),
    [
        ({"rate_limit": "lots"}, "rate_limit"),
        ({"max_age": "abc"}, "max_age"),
        ({"concurrency": 0}, "concurrency"),
        ({"priority": "urgent"}, "priority"),
        ({"max_retries": "x"}, "max_retries"),
        ({"retry_jitter": "some"}, "retry_jitter"),
        ({"timeout": float("nan")}, "timeout"),
        ({"client_id": "a.b"}, "client_id"),
        ({"queue_name": "a b"}, "queue name"),
        ({"eta": "tomorrow"}, "eta"),
        ({"delay": 10**9}, "delay"),
        ({"ack_type": "when_received"}, "ack_type"),
    ],
)
async def test_a_bad_label_is_refused_at_dispatch_naming_it(
    broker: JetStreamBroker, labels: dict[str, Any], named: str
) -> None:
    with pytest.raises(LabelError, match=named):
        await tasks.echo.kicker().with_labels(**labels).kiq(1)


@pytest.mark.parametrize(
    "labels",
    [
        {"max_age": "abc"},
        {"limit_key": []},
        {"concurrency": 1, "limit_key": ["not", "a", "name"]},
        {"rate_limit": 5},
        {"dispatch": "x"},
        {"priority": {"level": 9}},
        {"soft_timeout": "soon"},
        {"client_id": "a.*.b"},
    ],
)
async def test_a_message_with_bad_labels_is_dead_lettered_and_the_worker_goes_on(
    broker: JetStreamBroker,
    start_worker: StartWorker,
    js: JetStreamContext,
    settings: Settings,
    labels: dict[str, Any],
) -> None:
    await start_worker()
    task_id, body = _body(tasks.echo.task_name, labels)
    await js.publish(Layout.from_settings(settings).task_subject("default"), body)
    entry = await _dead_entry(broker, task_id)
    assert entry.reason == "invalid"
    assert entry.error_type == "InvalidTaskError"
    assert (await (await tasks.echo.kiq("next")).wait_result(timeout=60)).return_value == "next"

    async def settled() -> bool:
        """The ack follows the saved result: it may still be on its way."""
        info = await js.consumer_info(settings.stream, "workers-default")
        return info.num_ack_pending == 0

    await eventually(settled, timeout_s=10, what="nothing fetched is held on to")
    (worker,) = await broker.workers.alive()
    assert worker.status == "ok"


async def test_bad_max_retries_on_redelivery_is_dead_lettered(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    """`max_retries` is first read when the task fails: a bad one must not crash the run."""
    await start_worker()
    task_id, body = _body(tasks.decline.task_name, {"retry_on_error": True, "max_retries": "x"})
    await js.publish(Layout.from_settings(settings).task_subject("default"), body)
    entry = await _dead_entry(broker, task_id)
    assert entry.reason == "invalid"
    assert "max_retries" in (entry.error_message or "")
    assert (await (await tasks.echo.kiq(2)).wait_result(timeout=60)).return_value == 2


async def test_an_ack_type_label_on_the_wire_is_ignored_and_the_result_saved(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    await start_worker()
    task_id, body = _body(tasks.echo.task_name, {"ack_type": "when_received"}, args=["kept"])
    await js.publish(Layout.from_settings(settings).task_subject("default"), body)

    async def stored() -> Any:
        return await broker.results.redis.get(broker.layout.result_key(task_id))

    raw = await eventually(stored, timeout_s=60, what="result saved")
    assert orjson.loads(raw)["return_value"] == "kept"


async def test_an_undecodable_message_with_a_readable_id_ends_its_record(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    """A task nested deeper than the worker's JSON parser takes (about 200 levels) is sent by
    a client; the worker cannot decode it, but the record and waiters learn what happened."""
    await start_worker()
    deep: Any = "bottom"
    for _ in range(210):
        deep = [deep]
    handle = await tasks.echo.kiq(deep)
    result = await handle.wait_result(timeout=60)
    assert isinstance(result.error, InvalidTaskError)
    record = await broker.records.get(handle.task_id)
    assert record is not None
    assert record.state is TaskState.DEAD
    entry = await _dead_entry(broker, handle.task_id)
    assert entry.reason == "undecodable"


async def test_a_failure_too_large_for_a_message_is_still_dead_lettered(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    blob = "x" * 400_000
    handle = await tasks.refuse.kiq(blob)
    assert (await handle.wait_result(timeout=60)).is_err
    entry = await _dead_entry(broker, handle.task_id)
    assert entry.reason == "failed"
    assert entry.error_type == "ValueError"
    assert len(entry.error_message or "") <= 2000
    record = await broker.records.get(handle.task_id)
    assert record is not None
    assert record.state is TaskState.DEAD


async def test_oversized_garbage_reaches_the_dead_letter_queue_once(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    await start_worker()
    garbage = b"\xfe" * 900_000
    await js.publish(Layout.from_settings(settings).task_subject("default"), garbage)

    async def dead() -> list[Any]:
        return [e for e in await broker.dlq.entries() if e.reason == "undecodable"]

    (entry,) = await eventually(dead, timeout_s=60, what="garbage dead-lettered")
    assert entry.truncated
    assert garbage.startswith(base64.b64decode(entry.payload_b64 or ""))

    async def gone() -> bool:
        return (await js.stream_info(settings.stream)).state.messages == 0

    await eventually(gone, what="garbage removed from the queue")
    assert (await js.consumer_info(settings.stream, "workers-default")).num_redelivered == 0


async def test_a_fetch_loop_that_cannot_run_is_restarted_and_reported(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    """Another consumer takes the worker's subjects (JetStream refuses overlapping consumers on
    a work queue), so the worker's loop cannot subscribe: it reports itself unhealthy, keeps
    trying, and runs again once the squatter is gone."""
    from nats.js.api import AckPolicy, ConsumerConfig

    layout = Layout.from_settings(settings)
    await start_worker()
    await js.delete_consumer(settings.stream, layout.consumer("default"))
    await js.add_consumer(
        settings.stream,
        ConsumerConfig(
            durable_name="squatter",
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=layout.task_subject("default"),
        ),
    )

    async def unhealthy() -> bool:
        workers = await broker.workers.alive()
        return bool(workers) and workers[0].status == "unhealthy"

    await eventually(unhealthy, timeout_s=60, what="worker reports its stuck loop")
    (worker,) = await broker.workers.alive()
    assert any("default" in p or "consumer" in p for p in worker.problems), worker.problems
    await js.delete_consumer(settings.stream, "squatter")
    result = await (await tasks.echo.kiq("back")).wait_result(timeout=90)
    assert result.return_value == "back"

    async def healthy() -> bool:
        return (await broker.workers.alive())[0].status == "ok"

    await eventually(healthy, timeout_s=60, what="worker healthy again")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_LABELS = (
    "max_age", "rate_limit", "concurrency", "limit_key", "priority", "max_retries",
    "retry_on_error", "retry_backoff", "retry_jitter", "timeout", "soft_timeout", "dispatch",
    "client_id", "queue_name", "dead_letter", "ack_type", "delay", "eta",
)  # fmt: skip


@pytest.mark.settings(unknown_task_dlq_after_s=1.0)
async def test_any_labels_on_the_wire_never_stop_the_worker(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    """Hypothesis draws label sets (taskjet's label names with any JSON values); each message
    ends, recorded: run, or dead-lettered with the reason. None is left PENDING and the fetch
    loop keeps running."""
    await start_worker()
    subject = Layout.from_settings(settings).task_subject("default")
    sent: list[str] = []

    @hypothesis_settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    @given(st.dictionaries(st.sampled_from(_LABELS), _json, max_size=4))
    def draw(labels: dict[str, Any]) -> None:
        sent.append(json.dumps(labels))

    draw()
    ids = []
    for raw in sent:
        task_id = uuid.uuid4().hex
        body = json.dumps(
            {"task_id": task_id, "task_name": tasks.echo.task_name, "labels": json.loads(raw),
             "args": [1], "kwargs": {}}
        ).encode()  # fmt: skip
        handle = await tasks.echo.kiq("probe")  # a PENDING record to compare with
        await js.publish(subject, body)
        ids.append((task_id, raw, handle))
    for task_id, raw, handle in ids:
        assert (await handle.wait_result(timeout=120)).return_value == "probe", raw

        async def settled(task_id: str = task_id) -> bool:
            if await broker.results.redis.exists(broker.layout.result_key(task_id)):
                return True
            return any(e.task_id == task_id for e in await broker.dlq.entries(limit=10_000))

        await eventually(settled, timeout_s=120, what=f"message with labels {raw} settled")
    info = await js.consumer_info(settings.stream, "workers-default")
    assert info.num_ack_pending == 0
    assert (await broker.workers.alive())[0].status == "ok"
    counts = await broker.records.counts()
    assert counts[TaskState.PENDING] == counts[TaskState.STARTED] == 0, "no record left unended"
