"""A task with a schedule declared in code; imported only by the scheduling test's processes."""

from __future__ import annotations

from taskiq import Context, TaskiqDepends

from tests.support.tasks import _redis, register_task

KEY = "code-schedule"


@register_task(schedule=[{"cron": "* * * * * */2", "args": [KEY], "schedule_id": "every-2s"}])
async def every_two_seconds(key: str, context: Context = TaskiqDepends()) -> None:
    """Counts runs per tick (croniter's sixth cron field is seconds): twice would show as 2."""
    scheduled_for = float(context.message.labels.get("scheduled_for", 0))
    await (await _redis()).hincrby(f"test-ticks:{key}", f"{scheduled_for:.3f}", 1)
