"""What a schedule is: its rule (cron or interval), its task and arguments, checked on entry.

A schedule that could never run as written (a cron with no date, `R`/`H` values, an unknown
zone) is refused here, whether it comes from code, the API or Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from taskiq.decor import AsyncTaskiqDecoratedTask

from src.engine.core.errors import ScheduleError
from src.engine.scheduling.cron import check_expression, cron_rule, zone

SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9_.:#-]{1,128}$"


class ScheduleSpec(BaseModel):
    """When a task runs, and with what."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(
        default=None,
        description="Cron expression: five fields (`0 9 * * *`, daily at 09:00) or six with "
        "seconds last (`* * * * * */10`). `R` and `H` values are refused.",
    )
    interval: float | None = Field(default=None, ge=1, description="Every this many seconds.")
    timezone: str = Field(default="UTC", description="IANA zone the cron expression reads in.")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            check_expression(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of `cron` and `interval`")
        return self

    def latest_tick(self, now: float) -> float:
        """The last tick at or before `now` (Unix time), at the rule's own resolution."""
        if self.interval is not None:
            return math.floor(now / self.interval) * self.interval
        assert self.cron is not None
        return cron_rule(self.cron, self.timezone).latest(now)

    def next_tick(self, now: float) -> float:
        """The first tick after `now`: the next value `latest_tick` takes."""
        if self.interval is not None:
            return (math.floor(now / self.interval) + 1) * self.interval
        assert self.cron is not None
        return cron_rule(self.cron, self.timezone).following(now)


class Schedule(ScheduleSpec):
    id: str = Field(pattern=SCHEDULE_ID_PATTERN)
    task: str
    source: Literal["code", "api"] = "api"
    paused: bool = False
    created_at: float = Field(default_factory=time.time)


class ScheduleState(Schedule):
    next_run: float | None = Field(description="Unix time of the next tick (none while paused).")
    last_run: float | None = Field(default=None, description="Unix time of the last tick run.")
    last_task_id: str | None = Field(default=None, description="The task the last tick made.")


class FieldError(BaseModel):
    loc: list[str] = Field(description="The field at fault (empty: the whole definition).")
    msg: str


class InvalidSchedule(BaseModel):
    """A stored definition that cannot run (bad JSON, or refused by today's checks): it is
    skipped, shown so it can be deleted, and never stops the others."""

    id: str
    errors: list[FieldError]

    @classmethod
    def from_error(cls, schedule_id: str, exc: ValidationError) -> InvalidSchedule:
        return cls(
            id=schedule_id,
            errors=[
                FieldError(loc=[str(part) for part in e["loc"]], msg=e["msg"])
                for e in exc.errors(include_url=False)
            ],
        )

    def describe(self) -> str:
        return "; ".join(f"{'.'.join(e.loc) or 'definition'}: {e.msg}" for e in self.errors)


def code_schedules(tasks: Mapping[str, AsyncTaskiqDecoratedTask[Any, Any]]) -> list[Schedule]:
    """Schedules declared with the `schedule` label on registered tasks.

    Raises `ScheduleError` naming the task for one that cannot run: startup stops.
    """
    found: list[Schedule] = []
    for name, task in tasks.items():
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
