"""Periodic tasks, with no single scheduler process.

Schedules come from code (`@register_task(schedule=[{"cron": "*/5 * * * *"}])`, taskiq's label
convention) and from the API (kept in Redis). Every worker and server process runs a `Ticker`:
when a tick is due, each of them dispatches the task with an id derived from the schedule and
the tick time, and JetStream's de-duplication (`Nats-Msg-Id`) keeps exactly one. Any number of
replicas may run; a schedule removed from code is gone with the next deploy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from src.tasks.jetstream import JetStreamBroker

logger = logging.getLogger("taskjet.schedules")

TICK_NAMESPACE = uuid.UUID("0b6f4a8e-58f4-4f0e-9d1e-1f6b7c3a9e21")
_STORE_REFRESH_S = 2.0


class ScheduleError(ValueError):
    """A schedule that cannot be run as written."""


class ScheduleSpec(BaseModel):
    """When a task runs, and with what."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(
        default=None, description="Cron expression, e.g. `0 9 * * *` (daily at 09:00)."
    )
    interval: float | None = Field(default=None, ge=1, description="Every this many seconds.")
    timezone: str = Field(default="UTC", description="IANA zone the cron expression reads in.")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of `cron` and `interval`")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"invalid cron expression {self.cron!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self

    def latest_tick(self, now: float) -> float:
        """The last tick at or before `now` (Unix time)."""
        if self.interval is not None:
            return math.floor(now / self.interval) * self.interval
        assert self.cron is not None
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        if croniter.match(self.cron, local.replace(microsecond=0)):
            return math.floor(now)
        return float(croniter(self.cron, local).get_prev(float))

    def next_tick(self, now: float) -> float:
        if self.interval is not None:
            return (math.floor(now / self.interval) + 1) * self.interval
        assert self.cron is not None
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        return float(croniter(self.cron, local).get_next(float))


class Schedule(ScheduleSpec):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:#-]{1,128}$")
    task: str
    source: Literal["code", "api"] = "api"
    paused: bool = False
    created_at: float = Field(default_factory=time.time)


class ScheduleState(Schedule):
    next_run: float | None = Field(description="Unix time of the next tick (none while paused).")
    last_run: float | None = Field(default=None, description="Unix time of the last tick run.")
    last_task_id: str | None = Field(default=None, description="The task the last tick made.")


def tick_task_id(schedule_id: str, tick: float) -> str:
    """The same for every replica that fires this tick: the duplicates are dropped."""
    return uuid.uuid5(TICK_NAMESPACE, f"{schedule_id}@{tick:.3f}").hex


def code_schedules(broker: JetStreamBroker) -> list[Schedule]:
    """Schedules declared with the `schedule` label on registered tasks."""
    found: list[Schedule] = []
    for name, task in broker.get_all_tasks().items():
        for index, item in enumerate(task.labels.get("schedule") or []):
            spec = dict(item)
            schedule_id = str(spec.pop("schedule_id", None) or f"{name}#{index}")
            timezone = spec.pop("cron_offset", None) or spec.pop("timezone", "UTC")
            spec.pop("labels", None)
            try:
                found.append(
                    Schedule(id=schedule_id, task=name, source="code", timezone=timezone, **spec)
                )
            except ValueError as exc:
                raise ScheduleError(f"schedule {index} of task {name}: {exc}") from exc
    return found


class ScheduleStore:
    """API-made schedules in Redis, and every schedule's last run."""

    def __init__(self, broker: JetStreamBroker) -> None:
        self._broker = broker

    @property
    def _redis(self) -> Any:
        return self._broker.results.redis

    async def add(self, schedule: Schedule) -> bool:
        """False if a schedule with that id exists already."""
        key = self._broker.layout.schedules_key
        return bool(await self._redis.hsetnx(key, schedule.id, schedule.model_dump_json()))

    async def save(self, schedule: Schedule) -> None:
        await self._redis.hset(
            self._broker.layout.schedules_key, schedule.id, schedule.model_dump_json()
        )

    async def stored(self) -> list[Schedule]:
        raw = await self._redis.hgetall(self._broker.layout.schedules_key)
        return sorted(
            (Schedule.model_validate_json(value) for value in raw.values()), key=lambda s: s.id
        )

    async def all(self) -> list[Schedule]:
        return code_schedules(self._broker) + await self.stored()

    async def get(self, schedule_id: str) -> Schedule | None:
        for schedule in code_schedules(self._broker):
            if schedule.id == schedule_id:
                return schedule
        raw = await self._redis.hget(self._broker.layout.schedules_key, schedule_id)
        return Schedule.model_validate_json(raw) if raw else None

    async def delete(self, schedule_id: str) -> bool:
        layout = self._broker.layout
        removed = await self._redis.hdel(layout.schedules_key, schedule_id)
        await self._redis.delete(layout.schedule_runs_key(schedule_id))
        return bool(removed)

    async def record_run(self, schedule_id: str, tick: float, task_id: str) -> None:
        await self._redis.hset(
            self._broker.layout.schedule_runs_key(schedule_id),
            mapping={"last_run": tick, "last_task_id": task_id},
        )

    async def state(self, schedule: Schedule, now: float | None = None) -> ScheduleState:
        raw = await self._redis.hgetall(self._broker.layout.schedule_runs_key(schedule.id))
        runs = {k.decode(): v.decode() for k, v in raw.items()}
        return ScheduleState(
            **schedule.model_dump(),
            next_run=None if schedule.paused else schedule.next_tick(now or time.time()),
            last_run=float(runs["last_run"]) if "last_run" in runs else None,
            last_task_id=runs.get("last_task_id"),
        )


class Ticker:
    """Fires due ticks of every schedule; runs in every worker and server process."""

    def __init__(self, broker: JetStreamBroker) -> None:
        self._broker = broker
        self._fired: dict[str, float] = {}
        self._stored: list[Schedule] = []
        self._stored_at = 0.0
        # Declared in code: fixed for the life of the process, so read once.
        self._declared = code_schedules(broker)

    async def run(self) -> None:
        interval = self._broker.settings.scheduler_tick_s
        while True:
            try:
                await self.tick(time.time())
            except Exception as exc:  # NATS or Redis away: the next tick tries again
                logger.warning("schedules not checked: %s", exc)
            await asyncio.sleep(interval)

    async def tick(self, now: float) -> None:
        broker = self._broker
        if now - self._stored_at > _STORE_REFRESH_S:
            self._stored = await broker.schedules.stored()
            self._stored_at = now
        # A tick older than this is not fired late: its de-duplication may have expired.
        too_late = min(broker.settings.duplicate_window_s / 2, 60.0)
        for schedule in self._declared + self._stored:
            if schedule.paused:
                continue
            tick = schedule.latest_tick(now)
            if tick <= self._fired.get(schedule.id, -1.0):
                continue
            self._fired[schedule.id] = tick
            if now - tick > too_late:
                continue
            await self.fire(schedule, tick)

    async def fire(self, schedule: Schedule, tick: float) -> str | None:
        broker = self._broker
        task = broker.find_task(schedule.task)
        if task is None:
            logger.warning("schedule %s names unknown task %r", schedule.id, schedule.task)
            return None
        task_id = tick_task_id(schedule.id, tick)
        kicker = (
            task.kicker()
            .with_task_id(task_id)
            .with_labels(schedule_id=schedule.id, scheduled_for=tick)
        )
        await kicker.kiq(*schedule.args, **schedule.kwargs)
        await broker.schedules.record_run(schedule.id, tick, task_id)
        return task_id
