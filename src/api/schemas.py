"""Request and response models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from src.tasks.dlq import DeadLetter
from src.tasks.monitor import QueueDepth, QueueStatus
from src.tasks.records import TaskRecord
from src.tasks.states import TaskState

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

__all__ = ["QueueDepth", "QueueStatus", "TaskState"]


class ProcessRequest(BaseModel):
    data: dict[str, Any] = Field(description="Any JSON object; `example_task` summarises it.")


class TaskAccepted(BaseModel):
    task_id: str
    status_url: str


class SubmitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delay: float | None = Field(
        default=None, ge=0, le=366 * 86_400, description="Run no earlier than this many seconds."
    )
    eta: datetime | None = Field(default=None, description="Run no earlier than this time.")
    priority: int | None = Field(default=None, ge=0, le=9, description="0 lowest, 9 highest.")
    queue: str | None = Field(default=None, pattern=NAME_PATTERN)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    timeout: float | None = Field(default=None, gt=0, description="Hard time limit, seconds.")
    client_id: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="Follow all its tasks at /sse/{client_id}."
    )


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


class TaskError(BaseModel):
    type: str
    message: str


class TaskStatus(BaseModel):
    """Kept for `POST /process` clients: state plus result."""

    task_id: str
    state: TaskState
    result: Any = None
    error: TaskError | None = None
    execution_time_s: float | None = None


class TaskDetail(TaskRecord):  # type: ignore[no-redef]  # pydantic plugin: `kwargs`
    result: Any = Field(default=None, description="The return value, once SUCCESS.")
    links: TaskLinks


class TaskPage(BaseModel):
    items: list[TaskRecord]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


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


class Requeued(BaseModel):
    requeued: list[str]


class Purged(BaseModel):
    purged: int


class ComponentHealth(BaseModel):
    ok: bool
    detail: str | None = None


class Health(BaseModel):
    status: str
    nats: ComponentHealth
    redis: ComponentHealth
