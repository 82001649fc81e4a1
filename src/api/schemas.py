"""Request and response models of the HTTP API."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from src.engine.core.states import TaskState
from src.engine.operations.monitor import QueueDepth, QueueStatus
from src.engine.state.breakers import BreakerState
from src.engine.state.dead_letters import DeadLetter
from src.engine.state.record import TaskRecord
from src.engine.worker.registry import WorkerDiagnostics, WorkerInfo

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_DELAY_S = 366 * 86_400
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["QueueDepth", "QueueStatus", "TaskState"]


class ProcessRequest(BaseModel):
    data: dict[str, Any] = Field(description="Any JSON object; `example_task` summarises it.")


class TaskAccepted(BaseModel):
    task_id: str
    status_url: str


class SubmitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    delay: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY_S,
        description="Run no earlier than this many seconds (at most 366 days).",
    )
    eta: datetime | None = Field(
        default=None,
        description="Run no earlier than this time: from 1970 to 366 days ahead; a time "
        "without a zone is UTC.",
    )
    priority: int | None = Field(default=None, ge=0, le=9, description="0 lowest, 9 highest.")
    queue: str | None = Field(default=None, pattern=NAME_PATTERN)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    timeout: float | None = Field(
        default=None, gt=0, le=MAX_DELAY_S, description="Hard time limit, seconds."
    )
    client_id: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="Follow all its tasks at /sse/{client_id}."
    )
    notify_url: str | None = Field(
        default=None,
        max_length=2048,
        description="POST the final state here (http or https; a host TASKJET_WEBHOOK_ALLOW "
        "allows).",
    )

    @field_validator("eta")
    @classmethod
    def _eta_in_range(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        seconds = (value - EPOCH).total_seconds()
        if seconds < 0:
            raise ValueError("eta must not be before 1970-01-01T00:00:00Z")
        if seconds > time.time() + MAX_DELAY_S:
            raise ValueError("eta must be at most 366 days ahead")
        return value


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=512, description="A registered task's name.")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    options: SubmitOptions = Field(default_factory=SubmitOptions)


class TaskLinks(BaseModel):
    self: str
    events: str
    websocket: str
    cancel: str


class SubmitAccepted(BaseModel):
    task_id: str
    state: TaskState
    links: TaskLinks


class TaskDetail(TaskRecord):  # type: ignore[no-redef]  # pydantic plugin: `kwargs`
    result: Any = Field(default=None, description="The return value, once SUCCESS.")
    labels: dict[str, Any] | None = Field(
        default=None, description="The labels it was sent with (when its message was kept)."
    )
    links: TaskLinks


class TaskPage(BaseModel):
    items: list[TaskRecord]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["retry", "cancel", "delete"]
    task_ids: list[str] = Field(min_length=1, max_length=500)


class BulkFailure(BaseModel):
    task_id: str
    error: str


class BulkResult(BaseModel):
    done: list[str] = Field(description="Tasks the action was carried out on.")
    failed: list[BulkFailure] = Field(description="Unknown tasks, or in a state that refuses it.")


class OrphansResult(BaseModel):
    handed_back: list[str] = Field(description="Redelivered now instead of after ack_wait.")
    republished: list[str] = Field(description="Their message was gone: dispatched again.")


class DeadLetters(BaseModel):
    items: list[DeadLetter]
    total: int


class RequeueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_ids: list[str] | None = Field(default=None, min_length=1)
    task_name: str | None = None
    all: bool = Field(default=False, description="Requeue every entry (when nothing else is set).")


class RequeueSkipped(BaseModel):
    task_id: str
    reason: str


class Requeued(BaseModel):
    requeued: list[str]
    skipped: list[RequeueSkipped] = Field(
        default_factory=list, description="Entries left in place: they cannot run as stored."
    )


class Purged(BaseModel):
    purged: int


class ComponentHealth(BaseModel):
    ok: bool
    detail: str | None = None


class Health(BaseModel):
    status: str
    nats: ComponentHealth
    redis: ComponentHealth


class BreakerView(BaseModel):
    name: str
    state: str = Field(description="closed, open, or half_open (the next call is its trial)")
    failures: int = Field(description="Failures counted in the current window.")
    failure_threshold: int | None
    window_s: float | None
    open_s: float | None
    opened_at: float | None = Field(description="Unix time it last opened (while not closed).")
    retry_in_s: float = Field(description="Open: time left; half-open: a running trial's lease.")
    open_until: float | None = Field(
        default=None, description="Open: Unix time its open period ends (then half-open)."
    )

    @classmethod
    def listed(cls, states: Iterable[BreakerState]) -> list[BreakerView]:
        return [cls(**state.as_dict()) for state in states]


class Breakers(BaseModel):
    breakers: list[BreakerView]


class WorkersHealth(BaseModel):
    workers: list[WorkerInfo]
    breakers: list[BreakerView] = Field(
        description="Every circuit breaker tasks have used, shared by all workers."
    )


class WorkersDiagnostics(BaseModel):
    workers: list[WorkerDiagnostics]
    breakers: list[BreakerView]
