"""API-made schedules in Redis, and every schedule's last run.

What Redis holds is read, never trusted: a definition that is not JSON, or that today's
checks refuse (written by an older version, or by hand), comes back as an `InvalidSchedule`
beside the good ones, so listing and firing the others goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import ValidationError
from redis.asyncio import Redis

from src.engine.core.errors import ScheduleError
from src.engine.core.layout import Layout
from src.engine.scheduling.specs import (
    FieldError,
    InvalidSchedule,
    Schedule,
    ScheduleState,
)


class StoredScheduleError(ScheduleError):
    """A schedule is stored under this id, but cannot be read or run as stored."""

    def __init__(self, invalid: InvalidSchedule) -> None:
        super().__init__(f"stored schedule {invalid.id!r} is invalid: {invalid.describe()}")
        self.invalid = invalid


class Stored(NamedTuple):
    schedules: list[Schedule]
    invalid: list[InvalidSchedule]


def parse_stored(schedule_id: str, raw: bytes | str) -> Schedule | InvalidSchedule:
    try:
        schedule = Schedule.model_validate_json(raw)
    except ValidationError as exc:
        return InvalidSchedule.from_error(schedule_id, exc)
    if schedule.id != schedule_id:
        mismatch = FieldError(loc=["id"], msg=f"stored under the id {schedule_id!r}")
        return InvalidSchedule(id=schedule_id, errors=[mismatch])
    return schedule


class ScheduleStore:
    """API-made schedules in Redis, and every schedule's last run."""

    def __init__(
        self,
        redis: Callable[[], Redis],
        layout: Callable[[], Layout],
        declared: Callable[[], list[Schedule]],
    ) -> None:
        self._redis_client = redis
        self._layout = layout
        self._declared = declared

    @property
    def _redis(self) -> Any:
        return self._redis_client()

    def declared(self) -> list[Schedule]:
        """The schedules declared in code (`@register_task(schedule=[...])`)."""
        return self._declared()

    async def add(self, schedule: Schedule) -> bool:
        """False if a schedule with that id exists already."""
        key = self._layout().schedules_key
        return bool(await self._redis.hsetnx(key, schedule.id, schedule.model_dump_json()))

    async def save(self, schedule: Schedule) -> None:
        await self._redis.hset(
            self._layout().schedules_key, schedule.id, schedule.model_dump_json()
        )

    async def stored(self) -> Stored:
        """Every stored definition, the ones that can run apart from the ones that cannot."""
        raw = await self._redis.hgetall(self._layout().schedules_key)
        schedules: list[Schedule] = []
        invalid: list[InvalidSchedule] = []
        for key, value in raw.items():
            parsed = parse_stored(key.decode(errors="replace"), value)
            if isinstance(parsed, Schedule):
                schedules.append(parsed)
            else:
                invalid.append(parsed)
        return Stored(sorted(schedules, key=lambda s: s.id), sorted(invalid, key=lambda s: s.id))

    async def get(self, schedule_id: str) -> Schedule | None:
        """Raises `StoredScheduleError` for a definition that cannot run as stored."""
        for schedule in self.declared():
            if schedule.id == schedule_id:
                return schedule
        raw = await self._redis.hget(self._layout().schedules_key, schedule_id)
        if raw is None:
            return None
        parsed = parse_stored(schedule_id, raw)
        if isinstance(parsed, InvalidSchedule):
            raise StoredScheduleError(parsed)
        return parsed

    async def delete(self, schedule_id: str) -> bool:
        """Removes a stored definition, readable or not."""
        layout = self._layout()
        removed = await self._redis.hdel(layout.schedules_key, schedule_id)
        await self._redis.delete(layout.schedule_runs_key(schedule_id))
        return bool(removed)

    async def record_run(self, schedule_id: str, tick: float, task_id: str) -> None:
        """The tick that ran, its task, and how late it was dispatched (`lag_s`: with several
        replicas firing the same tick, the last one to get here)."""
        await self._redis.hset(
            self._layout().schedule_runs_key(schedule_id),
            mapping={
                "last_run": tick,
                "last_task_id": task_id,
                "lag_s": round(max(0.0, time.time() - tick), 6),
            },
        )

    async def lags(self) -> dict[str, float]:
        """How late the last run of each schedule that ran was dispatched, in seconds."""
        ids = sorted({s.id for s in self.declared()} | {s.id for s in (await self.stored())[0]})
        if not ids:
            return {}
        layout = self._layout()
        async with self._redis.pipeline(transaction=False) as pipe:
            for schedule_id in ids:
                pipe.hget(layout.schedule_runs_key(schedule_id), "lag_s")
            raw = await pipe.execute()
        return {i: float(lag) for i, lag in zip(ids, raw, strict=True) if lag is not None}

    async def state(self, schedule: Schedule, now: float | None = None) -> ScheduleState:
        raw = await self._redis.hgetall(self._layout().schedule_runs_key(schedule.id))
        runs = {k.decode(): v.decode() for k, v in raw.items()}
        return ScheduleState(
            **schedule.model_dump(),
            next_run=None if schedule.paused else schedule.next_tick(now or time.time()),
            last_run=float(runs["last_run"]) if "last_run" in runs else None,
            last_task_id=runs.get("last_task_id"),
        )
