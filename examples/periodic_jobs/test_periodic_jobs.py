"""The periodic jobs' own tests: the schedules are registered with the right next runs, computed
at a fixed moment (no waiting for real time), and each task is routed to its category's queue
with its rate limit; one tick is dispatched and run by a worker of that queue."""

from __future__ import annotations

from datetime import UTC, datetime

import periodic_tasks
import pytest

from src.engine.broker import JetStreamBroker
from src.testing import StartWorker, result_of

NOW = datetime(2026, 12, 7, 7, 32, 30, tzinfo=UTC).timestamp()  # a Monday, 08:32 in Berlin

EXPECTED_NEXT = {
    "metrics-every-5-minutes": datetime(2026, 12, 7, 7, 35, tzinfo=UTC),
    "rollup-hourly": datetime(2026, 12, 7, 8, 0, tzinfo=UTC),
    "report-daily-0900": datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
    # 08:00 Berlin this Monday has passed (07:00 UTC): the next is a week later.
    "digest-monday-0800-berlin": datetime(2026, 12, 14, 7, 0, tzinfo=UTC),
}

pytestmark = pytest.mark.taskjet_settings(worker_modules="periodic_tasks")


async def test_the_schedules_are_registered_with_their_next_runs(
    taskjet_broker: JetStreamBroker,
) -> None:
    declared = {s.id: s for s in taskjet_broker.schedules.declared() if s.id in EXPECTED_NEXT}
    assert set(declared) == set(EXPECTED_NEXT)
    for schedule_id, expected in EXPECTED_NEXT.items():
        state = await taskjet_broker.schedules.state(declared[schedule_id], now=NOW)
        assert state.next_run == expected.timestamp(), schedule_id
        assert state.source == "code"
    assert declared["digest-monday-0800-berlin"].timezone == "Europe/Berlin"
    assert declared["report-daily-0900"].args == ["daily"]


async def test_the_monday_digest_follows_berlin_summer_time(
    taskjet_broker: JetStreamBroker,
) -> None:
    digest = next(
        s for s in taskjet_broker.schedules.declared() if s.id == "digest-monday-0800-berlin"
    )
    in_june = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()  # a Monday afternoon
    assert digest.next_tick(in_june) == datetime(2026, 6, 8, 6, 0, tzinfo=UTC).timestamp()


def test_each_task_runs_on_its_category_queue_with_a_rate_limit() -> None:
    routes = {
        task.task_name: (task.labels["queue_name"], task.labels["rate_limit"])
        for task in (
            periodic_tasks.collect_metrics,
            periodic_tasks.hourly_rollup,
            periodic_tasks.build_report,
            periodic_tasks.weekly_digest,
        )
    }
    assert sorted(routes.values()) == [
        ("digests", "1/m"),
        ("metrics", "30/m"),
        ("metrics", "30/m"),
        ("reports", "5/m"),
    ]


@pytest.mark.taskjet_settings(worker_modules="periodic_tasks", queues="reports")
async def test_a_report_runs_on_a_worker_of_the_reports_queue(
    taskjet_broker: JetStreamBroker, taskjet_worker: StartWorker
) -> None:
    await taskjet_worker()
    handle = await periodic_tasks.build_report.kiq("daily")
    assert await result_of(handle) == "daily report"
