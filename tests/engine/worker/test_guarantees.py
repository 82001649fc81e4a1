"""Delivery guarantees through real worker processes: leases, retries, dead letters, limits."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from nats.js import JetStreamContext

from src.config import Settings
from src.embedded import free_port, redis_server_binary
from src.engine.broker import JetStreamBroker
from src.engine.core.errors import SoftTimeLimitExceeded, TaskExpiredError, UnknownTaskError
from src.engine.core.layout import Layout
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually, spawn


def _key() -> str:
    return uuid.uuid4().hex


async def _count(broker: JetStreamBroker, prefix: str, key: str) -> int:
    return int(await broker.results.redis.get(f"{prefix}:{key}") or 0)


async def _count_is(broker: JetStreamBroker, prefix: str, key: str, value: int) -> bool:
    return await _count(broker, prefix, key) == value


async def _dead(broker: JetStreamBroker, task_id: str) -> list[object]:
    return [e for e in await broker.dlq.entries(limit=1000) if e.task_id == task_id]


# Long tasks and leases ------------------------------------------------------------------------
@pytest.mark.settings(ack_wait_s=1.0)
async def test_task_three_times_longer_than_ack_wait_runs_once(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    key = _key()
    await start_worker()
    result = await (await tasks.slow.kiq(key, 3 * settings.ack_wait_s)).wait_result(timeout=60)
    assert result.return_value == key
    assert await _count(broker, "test-count", key) == 1
    info = await js.consumer_info(settings.stream, "workers-default")
    assert info.num_redelivered == 0


# Retries ----------------------------------------------------------------------------------------
async def test_retries_back_off_exponentially_with_jitter_then_succeed(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = _key()
    await start_worker()
    result = await (await tasks.flaky.kiq(key, 3)).wait_result(timeout=60)
    assert not result.is_err
    assert result.return_value == 4, "the task saw its attempt number"
    assert result.labels["attempt"] == 4
    times = [float(t) for t in await broker.results.redis.lrange(f"test-times:{key}", 0, -1)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    envelopes = [0.2, 0.4, 0.8]  # retry_backoff=0.2, factor 2
    assert len(gaps) == 3
    for gap, envelope in zip(gaps, envelopes, strict=True):
        # equal jitter: between half the envelope and the envelope, plus delivery overhead
        assert envelope / 2 <= gap <= envelope + 0.5, (gaps, envelopes)
    assert gaps[0] < gaps[2], "the gaps grow"


async def test_exhausted_retries_dead_letter_then_requeue_runs_again(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = _key()
    await start_worker()
    handle = await tasks.always_fails.kiq(key)
    result = await handle.wait_result(timeout=60)
    assert result.is_err
    assert isinstance(result.error, ValueError)
    assert await _count(broker, "test-count", key) == 3, "max_retries=2: three runs"

    entries = await eventually(lambda: _dead(broker, handle.task_id), what="dead letter")
    (entry,) = entries
    assert entry.reason == "exhausted"
    assert entry.attempts == 3
    assert entry.task_name == tasks.always_fails.task_name
    assert entry.args == [key]
    assert entry.error_type == "ValueError"
    assert entry.error_message == "run 3 failed as always"
    assert 'raise ValueError(f"run {runs} failed as always")' in entry.traceback

    assert await broker.dlq.requeue([handle.task_id]) == [handle.task_id]
    assert await _dead(broker, handle.task_id) == []

    async def ran_again() -> bool:
        return await _count(broker, "test-count", key) == 6 and bool(
            await _dead(broker, handle.task_id)
        )

    await eventually(ran_again, what="requeued task ran its three attempts again")


async def test_non_retryable_error_is_dead_lettered_at_once(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = _key()
    await start_worker()
    handle = await tasks.wrong_kind_of_failure.kiq(key)
    assert (await handle.wait_result(timeout=30)).is_err
    (entry,) = await eventually(lambda: _dead(broker, handle.task_id), what="dead letter")
    assert entry.reason == "failed"
    assert await _count(broker, "test-count", key) == 1


async def test_dead_letter_requeue_by_name_and_purge(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    handles = [await tasks.wrong_kind_of_failure.kiq(_key()) for _ in range(3)]
    await asyncio.gather(*(h.wait_result(timeout=30) for h in handles))

    async def all_dead() -> bool:
        return await broker.dlq.count() == 3

    await eventually(all_dead, what="three dead letters")
    listed = await broker.dlq.entries(task_name=tasks.wrong_kind_of_failure.task_name)
    assert {e.task_id for e in listed} == {h.task_id for h in handles}
    assert await broker.dlq.entries(task_name="nothing-by-this-name") == []
    requeued = await broker.dlq.requeue(task_name=tasks.wrong_kind_of_failure.task_name)
    assert sorted(requeued) == sorted(h.task_id for h in handles)
    await eventually(all_dead, what="they failed again")
    assert await broker.dlq.purge() == 3
    assert await broker.dlq.count() == 0


# Poison, undecodable and unknown messages -----------------------------------------------------
async def test_undecodable_message_is_dead_lettered(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    await start_worker()
    garbage = b"\xff{not json"
    await js.publish(Layout.from_settings(settings).task_subject("default"), garbage)

    async def dead() -> list[object]:
        return [e for e in await broker.dlq.entries() if e.reason == "undecodable"]

    (entry,) = await eventually(dead, what="undecodable message dead-lettered")
    assert base64.b64decode(entry.payload_b64) == garbage
    assert entry.error_message
    info = await js.stream_info(settings.stream)
    assert info.state.messages == 0


async def test_unknown_task_waits_for_a_worker_that_knows_it(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    from tests.support import late

    await start_worker()  # does not import tests.support.late
    handle = await late.late_task.kiq("deploy")

    async def offered_and_handed_back() -> bool:
        info = await js.consumer_info(settings.stream, "workers-default")
        return info.num_redelivered > 0 or info.delivered.consumer_seq >= 2

    await eventually(offered_and_handed_back, what="old worker saw and returned the task")
    assert not await handle.is_ready()
    await start_worker("tests.support.tasks", "tests.support.late", wait=False)
    result = await handle.wait_result(timeout=60)
    assert result.return_value == "late: deploy"
    assert await _dead(broker, handle.task_id) == []


@pytest.mark.settings(unknown_task_dlq_after_s=0.5)
async def test_unknown_task_is_dead_lettered_after_the_limit(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    from tests.support import late

    await start_worker()
    handle = await late.late_task.kiq("never")
    result = await handle.wait_result(timeout=60)
    assert isinstance(result.error, UnknownTaskError)
    (entry,) = await _dead(broker, handle.task_id)
    assert entry.reason == "unknown_task"


@pytest.mark.faults
@pytest.mark.settings(ack_wait_s=1.0, max_redeliveries=1)
async def test_task_that_crashes_its_worker_is_set_aside_as_poison(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = _key()
    await start_worker()
    handle = await tasks.crash_worker.kiq(key)
    result = await handle.wait_result(timeout=90)
    assert result.is_err
    assert "started 3 times without finishing" in str(result.error)
    assert await _count(broker, "test-count", key) == 2
    (entry,) = await _dead(broker, handle.task_id)
    assert entry.reason == "poison"
    # The worker keeps serving other tasks.
    assert (await (await tasks.echo.kiq("alive")).wait_result(timeout=60)).return_value == "alive"


# Time limits ------------------------------------------------------------------------------------
async def test_hard_timeout_stops_the_task(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = _key()
    await start_worker()
    handle = await tasks.slow.kicker().with_labels(timeout=0.3).kiq(key, 30)
    result = await handle.wait_result(timeout=20)
    assert isinstance(result.error, TimeoutError)
    assert await _count(broker, "test-count", key) == 1
    assert await _count(broker, "test-done", key) == 0


@pytest.mark.settings(default_timeout_s=0.3)
async def test_default_timeout_applies_to_tasks_without_one(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    result = await (await tasks.slow.kiq(_key(), 30)).wait_result(timeout=20)
    assert isinstance(result.error, TimeoutError)


async def test_soft_timeout_lets_the_task_clean_up(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.polite.kicker().with_labels(soft_timeout=0.2, timeout=10).kiq(30)
    assert (await handle.wait_result(timeout=20)).return_value == "cleaned up"


async def test_soft_timeout_not_handled_fails_the_task(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = _key()
    await start_worker()
    handle = await tasks.slow.kicker().with_labels(soft_timeout=0.2, timeout=10).kiq(key, 30)
    result = await handle.wait_result(timeout=20)
    assert isinstance(result.error, SoftTimeLimitExceeded)
    assert "soft time limit of 0.2s" in str(result.error)


async def test_max_age_skips_and_dead_letters(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = _key()
    handle = await tasks.slow.kicker().with_labels(max_age=0.05).kiq(key, 0)
    queued_at = time.monotonic()
    fresh = await tasks.echo.kicker().with_labels(max_age=3600).kiq("fresh")
    await eventually(lambda: time.monotonic() - queued_at > 0.05, what="task aged")
    await start_worker()
    result = await handle.wait_result(timeout=30)
    assert isinstance(result.error, TaskExpiredError)
    assert await _count(broker, "test-count", key) == 0, "an expired task never runs"
    (entry,) = await _dead(broker, handle.task_id)
    assert entry.reason == "expired"
    assert (await fresh.wait_result(timeout=30)).return_value == "fresh"


# Idempotency ------------------------------------------------------------------------------------
async def test_idempotency_key_dispatches_once(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    key = _key()
    first = await tasks.count.kicker().with_labels(idempotency_key=f"order-{key}").kiq(key)
    second = await tasks.count.kicker().with_labels(idempotency_key=f"order-{key}").kiq(key)
    assert first.task_id == second.task_id
    assert (await js.stream_info(settings.stream)).state.messages == 1
    await start_worker()
    assert (await second.wait_result(timeout=30)).return_value == 1


# Workers dying and stopping ------------------------------------------------------------------
@pytest.mark.faults
@pytest.mark.settings(ack_wait_s=1.0, worker_concurrency=10)
async def test_sigkilled_worker_loses_nothing(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    victim = await start_worker()
    await start_worker()
    keys = [_key() for _ in range(120)]
    handles = [await tasks.slow.kiq(k, 0.1) for k in keys]

    async def some_done() -> bool:
        return sum([await _count(broker, "test-done", k) for k in keys[:30]]) >= 10

    await eventually(some_done, what="work under way")
    victim.kill()  # the manager and its worker processes at once, as a lost host would
    results = await asyncio.gather(*(h.wait_result(timeout=120) for h in handles))
    assert [r.return_value for r in results] == keys
    runs = [await _count(broker, "test-count", k) for k in keys]
    assert all(r >= 1 for r in runs)
    duplicates = sum(r - 1 for r in runs)
    assert duplicates <= 10, (
        f"only tasks in flight on the killed worker may run twice: {duplicates}"
    )


@pytest.mark.faults
@pytest.mark.settings(ack_wait_s=60.0, worker_concurrency=2, shutdown_grace_s=10)
async def test_sigterm_finishes_running_tasks_and_hands_back_the_rest(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    worker = await start_worker(extra=("--max-async-tasks", "2", "--wait-tasks-timeout", "10"))
    keys = [_key() for _ in range(6)]
    handles = [await tasks.slow.kiq(k, 1.0) for k in keys]

    async def two_running() -> bool:
        return sum([await _count(broker, "test-count", k) for k in keys]) >= 2

    await eventually(two_running, what="two tasks running")
    assert await worker.stop(30) == 0
    done = [await _count(broker, "test-done", k) for k in keys]
    started = [await _count(broker, "test-count", k) for k in keys]
    assert done == started, "every started task finished before the worker exited"
    info = await js.consumer_info(settings.stream, "workers-default")
    assert info.num_ack_pending == 0, "nothing left waiting for ack_wait (60 s)"

    await start_worker()
    results = await asyncio.gather(*(h.wait_result(timeout=30) for h in handles))
    assert [r.return_value for r in results] == keys
    assert all([await _count(broker, "test-count", k) == 1 for k in keys]), "none ran twice"


@pytest.mark.faults
@pytest.mark.settings(ack_wait_s=60.0)
async def test_task_outliving_the_grace_period_is_cancelled_and_handed_back(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    worker = await start_worker(extra=("--wait-tasks-timeout", "0.5"))
    key = _key()
    handle = await tasks.stubborn.kiq(key)
    await eventually(lambda: _count_is(broker, "test-count", key, 1), what="first run under way")
    assert await worker.stop(30) == 0
    assert not await broker.results.is_result_ready(handle.task_id), "no result for a cut run"
    info = await js.consumer_info(settings.stream, "workers-default")
    assert info.num_redelivered == 0, "not redelivered to the departing worker's open pull"
    assert (await js.stream_info(settings.stream)).state.messages == 1, "the task is kept"

    await start_worker()
    # Well inside ack_wait (60 s): the task was handed back, not left to time out.
    result = await handle.wait_result(timeout=30)
    assert result.return_value == 2, "the task ran again on the next worker"


@pytest.mark.settings(worker_concurrency=2)
async def test_worker_holds_no_more_than_it_can_run(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    await start_worker(extra=("--max-async-tasks", "2"))
    keys = [_key() for _ in range(8)]
    handles = [await tasks.slow.kiq(k, 0.5) for k in keys]

    async def busy() -> bool:
        return sum([await _count(broker, "test-count", k) for k in keys]) >= 2

    await eventually(busy, what="worker busy")
    info = await js.consumer_info(settings.stream, "workers-default")
    assert info.num_ack_pending <= 2
    assert info.num_pending >= 4, "the rest stays in the stream for other workers"
    await start_worker(extra=("--max-async-tasks", "2"))
    await asyncio.gather(*(h.wait_result(timeout=60) for h in handles))


@pytest.mark.faults
@pytest.mark.settings(shutdown_grace_s=1.0, ack_wait_s=60.0)
async def test_the_grace_period_holds_without_wait_tasks_timeout(
    broker: JetStreamBroker, start_worker: StartWorker, js: JetStreamContext, settings: Settings
) -> None:
    """The stock CLI without `--wait-tasks-timeout` would wait for a running task for ever;
    TASKJET_SHUTDOWN_GRACE_S still bounds the stop, and the task is handed back."""
    worker = await start_worker()
    key = _key()
    handle = await tasks.stubborn.kiq(key)
    await eventually(lambda: _count_is(broker, "test-count", key, 1), what="first run under way")
    assert await worker.stop(30) == 0
    assert not await broker.results.is_result_ready(handle.task_id), "no result for a cut run"
    assert (await js.stream_info(settings.stream)).state.messages == 1, "the task is kept"
    await start_worker()
    assert (await handle.wait_result(timeout=30)).return_value == 2


@pytest.mark.settings(
    redis_wait_replicas=1, redis_wait_timeout_s=0.2, redelivery_delay_s=0.2, max_redeliveries=0
)
async def test_starts_that_could_not_be_recorded_never_make_a_task_poison(
    broker: JetStreamBroker, settings: Settings, start_worker: StartWorker, tmp_path: Path
) -> None:
    """Writes wait for a replica that is not there yet: each start fails to be recorded and
    the task goes back to the queue, never run. Once a replica follows, it runs and succeeds,
    instead of having been counted as started again and again without finishing."""
    await start_worker()
    handle = await tasks.echo.kiq("waited for a replica")
    log = tmp_path / "worker-0.log"

    async def handed_back_often() -> bool:
        text = log.read_text() if log.exists() else ""
        return text.count("cannot record 1 task start(s)") >= 4

    await eventually(handed_back_often, timeout_s=60, what="four starts that were not recorded")
    primary = urlsplit(settings.redis_url)
    port = free_port()
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--dir", str(tmp_path), "--replicaof", str(primary.hostname), str(primary.port)]
    replica = spawn(
        args,
        {},
        tmp_path / "replica.log",
    )
    try:
        result = await handle.wait_result(timeout=60)
        assert not result.is_err, result.error
        assert result.return_value == "waited for a replica"
    finally:
        await replica.stop()
