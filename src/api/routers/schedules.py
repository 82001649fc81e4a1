"""Periodic schedules: create, list, read, change, pause, resume, run now, delete.

Schedules declared in code (`@register_task(schedule=[...])`) are listed too, read-only: they
change with the code. A stored definition that cannot run (written by an older version, or by
hand) is listed apart, under `invalid`, and can be deleted; it stops nothing else.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from src.api.auth import require
from src.api.deps import BrokerDep
from src.api.errors import ConflictError, UnprocessableError
from src.api.schemas import SubmitRequest
from src.api.submit import bind_arguments, submittable
from src.api.views import schedule_view
from src.engine.core.errors import ScheduleError
from src.engine.scheduling.schedules import (
    InvalidSchedule,
    Schedule,
    ScheduleState,
    StoredScheduleError,
)

T = TypeVar("T")

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])

ScheduleId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:#-]{1,128}$")]


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="Chosen id (optional)."
    )
    task: str = Field(min_length=1, max_length=512)
    cron: str | None = Field(
        default=None,
        max_length=256,
        examples=["*/5 * * * *", "0 9 * * *", "0 8 * * 1", "* * * * * */10"],
        description="Five fields (minute resolution) or six with seconds last; no `R` or `H`.",
    )
    interval: float | None = Field(default=None, ge=1, le=366 * 86_400, allow_inf_nan=False)
    timezone: str = "UTC"
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    paused: bool = False


class ScheduleList(BaseModel):
    items: list[ScheduleState]
    invalid: list[InvalidSchedule] = Field(
        default_factory=list,
        description="Stored definitions that cannot run, with why; skipped until deleted.",
    )


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[require("admin")])
async def create_schedule(body: ScheduleCreate, broker: BrokerDep) -> ScheduleState:
    """Run an API-submittable task every `interval` seconds or on a `cron` expression."""
    task = submittable(broker, body.task)
    kwargs = bind_arguments(task, SubmitRequest(task=body.task, args=body.args, kwargs=body.kwargs))
    schedule = _checked(
        body.id or "new",
        {
            "id": body.id or f"s-{secrets.token_hex(6)}",
            "task": body.task,
            "cron": body.cron,
            "interval": body.interval,
            "timezone": body.timezone,
            "kwargs": kwargs,
            "paused": body.paused,
        },
    )
    exists = broker.schedule_control.declared(schedule.id) is not None
    if exists or not await broker.schedules.add(schedule):
        raise ConflictError(f"a schedule {schedule.id!r} exists already")
    return schedule_view(await broker.schedules.state(schedule))


@router.get("", dependencies=[require("read")])
async def list_schedules(broker: BrokerDep) -> ScheduleList:
    """Every schedule, from code and from the API, with its next and last run (arguments
    under keys named like secrets shown as `***`)."""
    stored = await broker.schedules.stored()
    schedules = broker.schedules.declared() + stored.schedules
    return ScheduleList(
        items=[schedule_view(await broker.schedules.state(s)) for s in schedules],
        invalid=stored.invalid,
    )


@router.get("/{schedule_id}", dependencies=[require("read")])
async def get_schedule(schedule_id: ScheduleId, broker: BrokerDep) -> ScheduleState:
    schedule = await _stored(broker.schedule_control.find(schedule_id))
    return schedule_view(await broker.schedules.state(schedule))


@router.post("/{schedule_id}/pause", dependencies=[require("admin")])
async def pause_schedule(schedule_id: ScheduleId, broker: BrokerDep) -> ScheduleState:
    return schedule_view(await _stored(broker.schedule_control.set_paused(schedule_id, True)))


@router.post("/{schedule_id}/resume", dependencies=[require("admin")])
async def resume_schedule(schedule_id: ScheduleId, broker: BrokerDep) -> ScheduleState:
    return schedule_view(await _stored(broker.schedule_control.set_paused(schedule_id, False)))


class ScheduleUpdate(BaseModel):
    """What to change; what is left out stays. `cron` replaces an `interval` and the other way
    round; `args` and `kwargs`, if either is given, replace the arguments."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(default=None, max_length=256)
    interval: float | None = Field(default=None, ge=1, le=366 * 86_400, allow_inf_nan=False)
    timezone: str | None = Field(default=None, max_length=64)
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None


class ScheduleRun(BaseModel):
    schedule_id: str
    task_id: str


@router.patch("/{schedule_id}", dependencies=[require("admin")])
async def update_schedule(
    schedule_id: ScheduleId, body: ScheduleUpdate, broker: BrokerDep
) -> ScheduleState:
    """Change a schedule's rule, time zone or arguments; checked as on create (422)."""
    schedule = await _stored(broker.schedule_control.editable(schedule_id))
    changes = body.model_dump(exclude_unset=True)
    if changes.get("cron") is not None:
        changes["interval"] = None
    elif changes.get("interval") is not None:
        changes["cron"] = None
    if "args" in changes or "kwargs" in changes:
        task = submittable(broker, schedule.task)
        request = SubmitRequest(task=schedule.task, args=body.args or [], kwargs=body.kwargs or {})
        changes["kwargs"] = bind_arguments(task, request)
        changes["args"] = []
    updated = _checked(schedule_id, {**schedule.model_dump(), **changes})
    await broker.schedules.save(updated)
    return schedule_view(await broker.schedules.state(updated))


@router.post(
    "/{schedule_id}/run", status_code=status.HTTP_202_ACCEPTED, dependencies=[require("admin")]
)
async def run_schedule(schedule_id: ScheduleId, broker: BrokerDep) -> ScheduleRun:
    """Run the schedule's task once now, outside its cadence (paused or not); the run is
    recorded as its last run."""
    try:
        task_id = await _stored(broker.schedule_control.run_now(schedule_id))
    except ScheduleError as exc:
        raise ConflictError(f"schedule {schedule_id!r} cannot run: {exc}") from None
    return ScheduleRun(schedule_id=schedule_id, task_id=task_id)


@router.delete(
    "/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[require("admin")]
)
async def delete_schedule(schedule_id: ScheduleId, broker: BrokerDep) -> Response:
    """Also removes a stored definition that cannot run."""
    await broker.schedule_control.delete(schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _stored(steering: Awaitable[T]) -> T:
    """What `steering` returns; a stored definition that cannot run is a 422 saying so."""
    try:
        return await steering
    except StoredScheduleError as exc:
        raise UnprocessableError(
            f"{exc}; delete it and create it again",
            [{"loc": ["stored", *e.loc], "msg": e.msg} for e in exc.invalid.errors],
        ) from None


def _checked(schedule_id: str, fields: dict[str, Any]) -> Schedule:
    """A schedule from `fields`, checked as every schedule is (422 naming what is wrong)."""
    try:
        return Schedule.model_validate(fields)
    except ValidationError as exc:
        invalid = InvalidSchedule.from_error(schedule_id, exc)
        raise UnprocessableError(
            f"invalid schedule: {invalid.describe()}",
            [{"loc": ["body", *e.loc], "msg": e.msg} for e in invalid.errors],
        ) from None
