"""Periodic tasks, with no single scheduler process.

Schedules come from code (`@register_task(schedule=[{"cron": "*/5 * * * *"}])`, taskiq's label
convention) and from the API (kept in Redis). Every worker and server process runs a `Ticker`:
when a tick is due, each of them dispatches the task with an id derived from the schedule and
the tick time, and JetStream's de-duplication (`Nats-Msg-Id`) keeps exactly one. Any number of
replicas may run; a schedule removed from code is gone with the next deploy.

The parts: `cron` (ticks of a cron expression), `specs` (what a schedule is, checked on entry),
`store` (API-made schedules in Redis) and `ticker` (firing). This module names them all.
"""

from src.engine.core.errors import ScheduleError
from src.engine.scheduling.specs import (
    FieldError,
    InvalidSchedule,
    Schedule,
    ScheduleSpec,
    ScheduleState,
    code_schedules,
)
from src.engine.scheduling.store import ScheduleStore, Stored, StoredScheduleError
from src.engine.scheduling.ticker import TICK_NAMESPACE, Ticker, TickPlan, tick_task_id

__all__ = [
    "TICK_NAMESPACE",
    "FieldError",
    "InvalidSchedule",
    "Schedule",
    "ScheduleError",
    "ScheduleSpec",
    "ScheduleState",
    "ScheduleStore",
    "Stored",
    "StoredScheduleError",
    "TickPlan",
    "Ticker",
    "code_schedules",
    "tick_task_id",
]
