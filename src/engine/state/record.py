"""What taskjet knows about one task: the record as read back from its Redis hash."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, Field

from src.engine.core.states import TaskState

# What a new dispatch of a task id clears before it runs again.
OUTCOME_FIELDS = (
    "started_at",
    "finished_at",
    "runtime_s",
    "worker",
    "error_type",
    "error_message",
    "traceback",
    "progress",
    "retry_at",
    "ack",
    "enqueued_at",
    "seq",
    "attempts",
)


class Progress(BaseModel):
    current: float | None = None
    total: float | None = None
    message: str | None = None
    stage: str | None = None


class RecordError(BaseModel):
    type: str
    message: str
    traceback: str | None = None


class TaskRecord(BaseModel):  # type: ignore[no-redef]  # pydantic plugin: field `kwargs`
    """What taskjet knows about one task."""

    task_id: str
    task_name: str
    state: TaskState
    queue: str | None = None
    client_id: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    args_truncated: bool = Field(
        default=False, description="Arguments were too large (or not shown)."
    )
    dispatch: int = Field(default=1, description="1, then one more for each retry by id.")
    attempts: int = 0
    worker: str | None = None
    queued_at: float | None = Field(default=None, description="Unix time.")
    due_at: float | None = Field(default=None, description="Not run before this Unix time.")
    started_at: float | None = None
    finished_at: float | None = None
    runtime_s: float | None = None
    retry_at: float | None = None
    error: RecordError | None = None
    progress: Progress | None = None
    retryable: bool = Field(default=False, description="The whole task is kept for a retry.")

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> TaskRecord:
        h = {k.decode(): v for k, v in raw.items()}

        def text(name: str) -> str | None:
            value = h.get(name)
            return value.decode() if value is not None else None

        def number(name: str) -> float | None:
            value = h.get(name)
            return float(value) if value else None

        error = None
        if h.get("error_type"):
            error = RecordError(
                type=text("error_type") or "",
                message=text("error_message") or "",
                traceback=text("traceback"),
            )
        args_truncated = h.get("args_truncated") == b"1"
        return cls(
            task_id=text("id") or "",
            task_name=text("name") or "",
            state=TaskState(text("state") or "PENDING"),
            queue=text("queue"),
            client_id=text("client_id"),
            args=orjson.loads(h["args"]) if "args" in h and not args_truncated else None,
            kwargs=orjson.loads(h["kwargs"]) if "kwargs" in h and not args_truncated else None,
            args_truncated=args_truncated,
            dispatch=int(h.get("dispatch") or 1),
            attempts=int(h.get("attempts") or 0),
            worker=text("worker"),
            # Until the sender's PENDING write lands (a worker may finish first): when the
            # message entered the stream, as the worker recorded it.
            queued_at=number("queued_at") or number("enqueued_at"),
            due_at=number("due_at"),
            started_at=number("started_at"),
            finished_at=number("finished_at"),
            runtime_s=number("runtime_s"),
            retry_at=number("retry_at"),
            error=error,
            progress=Progress.model_validate_json(h["progress"]) if h.get("progress") else None,
            retryable="payload" in h,
        )
