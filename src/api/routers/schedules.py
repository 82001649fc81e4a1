"""Periodic schedules: create, list, read, pause, resume, delete.

Schedules declared in code (`@register_task(schedule=[...])`) are listed too, read-only: they
change with the code.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from src.api.auth import require
from src.api.deps import BrokerDep
from src.api.errors import ConflictError, NotFoundError, UnprocessableError
from src.api.schemas import SubmitRequest
from src.api.submit import bind_arguments, submittable
from src.tasks.jetstream import JetStreamBroker
from src.tasks.schedules import Schedule, ScheduleState

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])

ScheduleId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:#-]{1,128}$")]


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="Chosen id (optional)."
    )
    task: str = Field(min_length=1, max_length=512)
    cron: str | None = Field(default=None, examples=["*/5 * * * *", "0 9 * * *", "0 8 * * 1"])
    interval: float | None = Field(default=None, ge=1, le=366 * 86_400)
    timezone: str = "UTC"
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    paused: bool = False


class ScheduleList(BaseModel):
    items: list[ScheduleState]


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[require("admin")])
async def create_schedule(body: ScheduleCreate, broker: BrokerDep) -> ScheduleState:
    """Run an API-submittable task every `interval` seconds or on a `cron` expression."""
    task = submittable(broker, body.task)
    kwargs = bind_arguments(task, SubmitRequest(task=body.task, args=body.args, kwargs=body.kwargs))
    try:
        schedule = Schedule(
            id=body.id or f"s-{secrets.token_hex(6)}",
            task=body.task,
            cron=body.cron,
            interval=body.interval,
            timezone=body.timezone,
            kwargs=kwargs,
            paused=body.paused,
        )
    except ValidationError as exc:
        raise UnprocessableError(
            "invalid schedule",
            [{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()],
        ) from None
    if await broker.schedules.get(schedule.id) is not None or not await broker.schedules.add(
        schedule
    ):
        raise ConflictError(f"a schedule {schedule.id!r} exists already")
    return await broker.schedules.state(schedule)


@router.get("", dependencies=[require("read")])
async def list_schedules(broker: BrokerDep) -> ScheduleList:
    """Every schedule, from code and from the API, with its next and last run."""
    return ScheduleList(
        items=[await broker.schedules.state(s) for s in await broker.schedules.all()]
    )


@router.get("/{schedule_id}", dependencies=[require("read")])
async def get_schedule(schedule_id: ScheduleId, broker: BrokerDep) -> ScheduleState:
    return await broker.schedules.state(await _schedule(broker, schedule_id))


@router.post("/{schedule_id}/pause", dependencies=[require("admin")])
async def pause_schedule(schedule_id: ScheduleId, broker: BrokerDep) -> ScheduleState:
    return await _set_paused(broker, schedule_id, True)


@router.post("/{schedule_id}/resume", dependencies=[require("admin")])
async def resume_schedule(schedule_id: ScheduleId, broker: BrokerDep) -> ScheduleState:
    return await _set_paused(broker, schedule_id, False)


@router.delete(
    "/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[require("admin")]
)
async def delete_schedule(schedule_id: ScheduleId, broker: BrokerDep) -> Response:
    schedule = await _schedule(broker, schedule_id)
    _editable(schedule)
    await broker.schedules.delete(schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _schedule(broker: JetStreamBroker, schedule_id: str) -> Schedule:
    schedule = await broker.schedules.get(schedule_id)
    if schedule is None:
        raise NotFoundError(f"no schedule {schedule_id!r}")
    return schedule


def _editable(schedule: Schedule) -> None:
    if schedule.source == "code":
        raise ConflictError(
            f"schedule {schedule.id!r} is declared in code ({schedule.task}); change it there"
        )


async def _set_paused(broker: JetStreamBroker, schedule_id: str, paused: bool) -> ScheduleState:
    schedule = await _schedule(broker, schedule_id)
    _editable(schedule)
    updated = schedule.model_copy(update={"paused": paused})
    await broker.schedules.save(updated)
    return await broker.schedules.state(updated)
