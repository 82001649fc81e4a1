"""Task counters: a known mix of outcomes on a real worker process, counted exactly."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from src.engine.state.stats import BUCKETS, Histogram, dimension, minute_fields, parse_totals
from src.engine.state.transitions import Transition
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually

ECHO = tasks.echo.task_name
DECLINE = tasks.decline.task_name
ALWAYS = tasks.always_fails.task_name
FLAKY = tasks.flaky.task_name


async def run_known_mix(broker: JetStreamBroker, start_worker: StartWorker) -> dict[str, Any]:
    """3 successes, 2 failures (not dead-lettered), one task dead after 2 retries, one that
    succeeds after a retry, one cancelled while delayed: what each task name must count."""
    await start_worker()
    handles = [await tasks.echo.kiq(i) for i in range(3)]
    handles += [await tasks.decline.kicker().with_labels(dead_letter=False).kiq(i) for i in (1, 2)]
    handles.append(await tasks.always_fails.kiq(uuid.uuid4().hex))
    handles.append(await tasks.flaky.kiq(uuid.uuid4().hex, 1))
    for handle in handles:
        await handle.wait_result(timeout=60)
    delayed = await tasks.echo.kicker().with_labels(delay=600).kiq("later")
    assert (await broker.control.cancel(delayed.task_id)).state is TaskState.CANCELLED

    async def settled() -> bool:
        return sum(await _outcomes(broker)) == 11

    await eventually(settled, what="every outcome counted")
    return {
        ECHO: {"succeeded": 3, "cancelled": 1, "runs": 3},
        DECLINE: {"failed": 2, "runs": 2},
        ALWAYS: {"retried": 2, "dead": 1, "runs": 3},
        FLAKY: {"retried": 1, "succeeded": 1, "runs": 2},
    }


async def _outcomes(broker: JetStreamBroker) -> list[int]:
    totals = await broker.stats.totals()
    return [n for entry in totals for n in entry.outcomes.values()]


async def test_a_known_mix_is_counted_exactly(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    since = int(time.time())
    expected = await run_known_mix(broker, start_worker)

    totals = {(t.task, t.queue): t for t in await broker.stats.totals()}
    assert set(totals) == {(name, "default") for name in expected}
    for name, want in expected.items():
        entry = totals[name, "default"]
        outcomes = {k: v for k, v in entry.outcomes.items() if v}
        assert outcomes == {k: v for k, v in want.items() if k != "runs"}, name
        assert entry.run_count == want["runs"] == sum(entry.run_buckets), name
        assert entry.wait_count == want["runs"] == sum(entry.wait_buckets), name
        assert entry.run_sum >= 0
        assert entry.wait_sum >= 0

    series = await broker.stats.series(since, 60)
    assert series.totals == series.totals | {
        "succeeded": 4,
        "failed": 2,
        "retried": 3,
        "dead": 1,
        "cancelled": 1,
        "run_count": 10,
        "wait_count": 10,
    }
    assert series.run_histogram.counts[-1] == 10 == series.wait_histogram.counts[-1]
    assert sum(b["succeeded"] for b in series.buckets) == 4

    one = await broker.stats.series(since, 60, task=ALWAYS)
    assert (one.totals["retried"], one.totals["dead"], one.totals["run_count"]) == (2, 1, 3)
    both = await broker.stats.series(since, 60, task=FLAKY, queue="default")
    assert (both.totals["retried"], both.totals["succeeded"]) == (1, 1)
    queue = await broker.stats.series(since, 60, queue="default")
    assert queue.totals == series.totals
    other = await broker.stats.series(since, 60, queue="email")
    assert other.totals["run_count"] == 0
    assert other.run_histogram.counts[-1] == 0


async def test_a_write_that_changes_nothing_counts_nothing(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.echo.kiq(1)
    await handle.wait_result(timeout=30)
    await eventually(lambda: _outcomes(broker), what="counted")
    # The record says SUCCESS already: the same final write again applies but moves nothing.
    again = Transition(
        handle.task_id, ECHO, TaskState.SUCCESS, "final", {"runtime_s": 9.0}, attempt=1
    )
    assert (await broker.records.apply([again]))[0].code == "applied"
    (entry,) = await broker.stats.totals()
    assert (sum(entry.outcomes.values()), entry.run_count) == (1, 1)


async def test_counters_expire_after_the_retention(broker: JetStreamBroker) -> None:
    layout = broker.layout
    handle = await tasks.echo.kicker().with_labels(delay=600).kiq("x")
    await broker.control.cancel(handle.task_id)
    minute = int(time.time()) // 60 * 60
    redis = broker.results.redis
    ttl = await redis.ttl(layout.stats_minute_key(minute))
    if ttl < 0:  # the minute turned between the cancel and the read
        ttl = await redis.ttl(layout.stats_minute_key(minute - 60))
    assert 0 < ttl <= broker.settings.stats_retention_s + 60
    assert 0 < await redis.ttl(layout.stats_totals_key) <= broker.settings.stats_retention_s


async def test_empty_minutes_are_zero_and_steps_group_minutes(broker: JetStreamBroker) -> None:
    now = int(time.time()) // 60 * 60
    series = await broker.stats.series(now - 600, 120, until=now)
    assert [b["start"] for b in series.buckets] == list(range(now - 600, now + 1, 120))
    assert all(b["succeeded"] == 0 and b["run_seconds_sum"] == 0 for b in series.buckets)
    assert series.run_histogram == Histogram([*BUCKETS, "+Inf"], [0] * (len(BUCKETS) + 1))


async def test_a_step_that_is_not_whole_minutes_is_refused(broker: JetStreamBroker) -> None:
    for step in (0, -60, 90):
        with pytest.raises(ValueError, match="multiple of 60"):
            await broker.stats.series(0, step)


def test_dimensions_and_totals_parse() -> None:
    assert dimension(None, None) == ""
    assert dimension("a:b", None) == "t:a:b"
    assert dimension(None, "q") == "q:q"
    assert dimension("a|b", "q") == "s:a|b|q"
    assert minute_fields("")[0] == "succeeded|"
    raw = {b"succeeded|a|b|q": b"2", b"run_b3|a|b|q": b"1", b"run_sum|a|b|q": b"0.5"}
    (entry,) = parse_totals(raw)
    assert (entry.task, entry.queue, entry.outcomes["succeeded"]) == ("a|b", "q", 2)
    assert entry.run_buckets[3] == 1
    assert entry.run_sum == 0.5
    assert Histogram.of([1, 0, 2]).counts == [1, 1, 3]


async def test_a_batch_of_many_tasks_is_summed_exactly(broker: JetStreamBroker) -> None:
    """One script call for 300 tasks of three names: each field is written once, summed."""
    now = time.time()
    names = ("n.a", "n.b", "n.c")
    batch: list[Transition] = []
    for i in range(300):
        task_id, name = uuid.uuid4().hex, names[i % 3]
        batch += [
            Transition(
                task_id,
                name,
                TaskState.PENDING,
                "create",
                {"queue": "q1" if i % 2 else "q2", "queued_at": now - 2},
            ),
            Transition(task_id, name, TaskState.STARTED, "start", {"started_at": now}, attempt=1),
            Transition(
                task_id,
                name,
                TaskState.RETRYING if i % 5 == 0 else TaskState.SUCCESS,
                "advance" if i % 5 == 0 else "final",
                {"finished_at": now, "runtime_s": 0.02},
                attempt=1,
            ),
        ]
    await broker.records.apply(batch)
    totals = {(t.task, t.queue): t for t in await broker.stats.totals()}
    assert len(totals) == 6
    a1 = totals["n.a", "q1"]  # i = 3, 9, 15, ...: 50 tasks, every fifth retried
    assert (a1.outcomes["succeeded"], a1.outcomes["retried"]) == (40, 10)
    assert (a1.run_count, a1.wait_count) == (50, 50)
    assert a1.run_buckets[BUCKETS.index(0.025)] == 50
    assert a1.wait_buckets[BUCKETS.index(2.5)] == 50
    assert a1.run_sum == pytest.approx(1.0)
    assert a1.wait_sum == pytest.approx(100.0)
    series = await broker.stats.series(int(now) - 60, 60)
    assert (series.totals["succeeded"], series.totals["retried"]) == (240, 60)
    assert series.totals["run_seconds_sum"] == pytest.approx(6.0)
    by_queue = await broker.stats.series(int(now) - 60, 60, queue="q2")
    assert by_queue.totals["run_count"] == 150
    one = await broker.stats.series(int(now) - 60, 60, task="n.b", queue="q2")
    assert one.totals["run_count"] == 50
