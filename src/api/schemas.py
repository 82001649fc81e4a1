"""Request and response models of the HTTP API."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class TaskState(StrEnum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    PROGRESS = "PROGRESS"
    RETRYING = "RETRYING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"
    DEAD = "DEAD"


class ProcessRequest(BaseModel):
    data: dict[str, Any] = Field(description="Any JSON object; `example_task` summarises it.")


class TaskAccepted(BaseModel):
    task_id: str
    status_url: str


class TaskError(BaseModel):
    type: str
    message: str


class TaskStatus(BaseModel):
    task_id: str
    state: TaskState
    result: Any = None
    error: TaskError | None = None
    execution_time_s: float | None = None


class ComponentHealth(BaseModel):
    ok: bool
    detail: str | None = None


class Health(BaseModel):
    status: str
    nats: ComponentHealth
    redis: ComponentHealth
