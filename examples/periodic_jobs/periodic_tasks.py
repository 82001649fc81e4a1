"""A periodic job set: four schedules, each task on the queue of its category with a rate limit
of its own, so a slow category never holds up another and none can flood what it calls.

Run workers per category with `TASKJET_QUEUES` (`metrics`, `reports`, `digests`); every worker
and server process runs the ticker, and each tick is dispatched once whatever their number.
"""

from __future__ import annotations

from src.tasks.broker import register_task


@register_task(
    queue_name="metrics",
    rate_limit="30/m",
    schedule=[{"cron": "*/5 * * * *", "schedule_id": "metrics-every-5-minutes"}],
)
async def collect_metrics() -> str:
    """Every 5 minutes: sample the services' counters."""
    return "collected"


@register_task(
    queue_name="metrics",
    rate_limit="30/m",
    schedule=[{"cron": "0 * * * *", "schedule_id": "rollup-hourly"}],
)
async def hourly_rollup() -> str:
    """Every hour on the hour: fold the samples into hourly figures."""
    return "rolled up"


@register_task(
    queue_name="reports",
    rate_limit="5/m",
    schedule=[{"cron": "0 9 * * *", "schedule_id": "report-daily-0900", "args": ["daily"]}],
)
async def build_report(period: str) -> str:
    """Daily at 09:00 UTC: the day's report."""
    return f"{period} report"


@register_task(
    queue_name="digests",
    rate_limit="1/m",
    schedule=[
        {
            "cron": "0 8 * * 1",
            "timezone": "Europe/Berlin",
            "schedule_id": "digest-monday-0800-berlin",
        }
    ],
)
async def weekly_digest() -> str:
    """Mondays at 08:00 Berlin time (07:00 UTC in winter, 06:00 UTC in summer)."""
    return "sent"
