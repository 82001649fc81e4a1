"""Task events on JetStream: every state change and progress update, once, for live updates.

Each event goes to `<prefix>.events.<client or _>.<task id>` in a short-retention stream, so a
listener can follow one task or every task of one client, and resume from the sequence it saw
last (SSE `Last-Event-ID`). Events are published without waiting for the stream's ack (core
NATS, at most once): they are a view of the task record, which stays the source of truth, and a
follower that misses the final event reads the outcome from the record instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import BaseModel, Field

from src.engine.core import tracing
from src.engine.core.layout import Layout
from src.engine.core.redaction import redact
from src.engine.core.states import EVENT_STATUS, TERMINAL_EVENTS, TaskState
from src.engine.state.record import Progress, TaskRecord

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

logger = logging.getLogger("taskjet.events")


class EventError(BaseModel):
    type: str
    message: str


class TaskEvent(BaseModel):
    task_id: str
    status: str = Field(description="started, processing, completed, error, cancelled, retrying")
    message: str | None = None
    progress: float | None = None
    total: float | None = None
    stage: str | None = None
    timestamp: float = Field(default_factory=time.time, description="Unix time.")
    result: Any = Field(
        default=None, description="On `completed`: the return value (secrets hidden)."
    )
    result_omitted: bool = Field(
        default=False,
        description="The result is over TASKJET_EVENT_RESULT_MAX_BYTES: read it from the record.",
    )
    error: EventError | None = Field(default=None, description="On `error`: what went wrong.")

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_EVENTS

    @classmethod
    def of(
        cls,
        task_id: str,
        state: TaskState,
        message: str | None = None,
        progress: Progress | None = None,
    ) -> TaskEvent:
        p = progress or Progress()
        return cls(
            task_id=task_id,
            status=EVENT_STATUS[state],
            message=message if message is not None else p.message,
            progress=p.current,
            total=p.total,
            stage=p.stage,
        )

    @classmethod
    def ended_by(cls, task_id: str, state: TaskState, error: BaseException) -> TaskEvent:
        """The final event of a task ended without running (cancelled or purged while queued)."""
        failure = EventError(type=type(error).__name__, message=str(error))
        return cls.of(task_id, state, str(error)).model_copy(update={"error": failure})

    def with_outcome(
        self, result_json: bytes | str | None, error: EventError | None, max_bytes: int
    ) -> TaskEvent:
        """The final event with what the task ended with (see `outcome_fields`)."""
        update = outcome_fields(self.status, result_json, error, max_bytes)
        return self.model_copy(update=update) if update else self

    def public(self) -> dict[str, Any]:
        """The event as followers get it (see `event_body`, whose arguments are its fields)."""
        return event_body(**dict(self))

    def to_json(self) -> str:
        return orjson.dumps(self.public()).decode()

    @classmethod
    def from_record(cls, record: TaskRecord) -> TaskEvent:
        """The event a record's current state stands for (when its events have expired)."""
        message = record.error.message if record.error else None
        error = EventError(type=record.error.type, message=message or "") if record.error else None
        return cls.of(record.task_id, record.state, message, record.progress).model_copy(
            update={
                "timestamp": record.finished_at or record.started_at or time.time(),
                "error": error if record.state.terminal else None,
            }
        )


def event_body(
    task_id: str,
    status: str,
    *,
    message: str | None = None,
    progress: float | None = None,
    total: float | None = None,
    stage: str | None = None,
    timestamp: float | None = None,
    result: Any = None,
    result_omitted: bool = False,
    error: EventError | None = None,
) -> dict[str, Any]:
    """An event as followers get it (`TaskEvent`'s fields): `result` only on `completed`,
    `result_omitted` and `error` only when set, so progress events stay as small as they were.
    Built as a plain dict, not through the model: a worker publishes two per task."""
    body: dict[str, Any] = {
        "task_id": task_id,
        "status": status,
        "message": message,
        "progress": progress,
        "total": total,
        "stage": stage,
        "timestamp": time.time() if timestamp is None else timestamp,
    }
    if status == "completed":
        body["result"] = result
    if result_omitted:
        body["result_omitted"] = True
    if error is not None:
        body["error"] = {"type": error.type, "message": error.message}
    return body


def outcome_fields(
    status: str, result_json: bytes | str | None, error: EventError | None, max_bytes: int
) -> dict[str, Any]:
    """What a final event adds: the error, or the return value (taken from the stored
    result's JSON) when it fits in `max_bytes` as JSON, so a follower needs no second request.
    A larger one is only flagged `result_omitted`."""
    if error is not None:
        return {"error": error}
    if status != "completed" or result_json is None:
        return {}
    value = redact(orjson.loads(result_json).get("return_value"))
    if len(orjson.dumps(value)) > max_bytes:
        return {"result_omitted": True}
    return {"result": value}


class StreamedEvent(BaseModel):
    sequence: int
    event: TaskEvent


class EventBus:
    """Publishes and follows task events."""

    def __init__(self, nc: NATS, layout: Layout) -> None:
        self._nc = nc
        self._layout = layout

    async def publish(self, event: TaskEvent, client_id: str | None = None) -> None:
        await self.publish_body(event.public(), client_id)

    async def publish_body(self, body: dict[str, Any], client_id: str | None = None) -> None:
        """Publish an event already built by `event_body`."""
        task_id = body["task_id"]
        subject = self._layout.event_subject(task_id, client_id)
        try:
            with tracing.calling("publish", "send", subject):  # off: no span
                await self._nc.publish(subject, orjson.dumps(body))
        except Exception as exc:  # a view, not the record: never fail a task over it
            logger.warning("event for %s not published: %s", task_id, exc)

    def follow(
        self, subject: str, after: int | None = None, only_new: bool = False
    ) -> EventFollower:
        """Events on `subject`: all retained ones (or those after sequence `after`, or only new
        ones), then live. Use as `async with bus.follow(...) as events:`."""
        if after is not None:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1
            )
        else:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.NEW if only_new else DeliverPolicy.ALL
            )
        return EventFollower(self._nc.jetstream(), subject, self._layout.events_stream, config)


class EventFollower:
    """An ordered, ephemeral consumer of events; gone when the `async with` block ends.

    Leaving the block deletes the consumer at once rather than leaving it to JetStream's
    inactivity timer, and does so even when the block is left by cancellation (a client that
    went away): the cleanup runs as its own task, shielded from the caller's cancellation.
    """

    _closing: ClassVar[set[asyncio.Task[None]]] = set()

    def __init__(
        self, js: JetStreamContext, subject: str, stream: str, config: ConsumerConfig
    ) -> None:
        self._js = js
        self._subject = subject
        self._stream = stream
        self._config = config
        self._subscription: JetStreamContext.PushSubscription | None = None

    async def __aenter__(self) -> EventFollower:
        self._subscription = await self._js.subscribe(
            self._subject, stream=self._stream, ordered_consumer=True, config=self._config
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is None:
            return
        closing = asyncio.ensure_future(self._close(subscription))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        await asyncio.shield(closing)

    async def _close(self, subscription: JetStreamContext.PushSubscription) -> None:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        with contextlib.suppress(Exception):
            # The consumer's current name: an ordered consumer gets a new one when it resets.
            await self._js.delete_consumer(self._stream, subscription._consumer)

    async def next(self, timeout_s: float) -> StreamedEvent | None:
        """The next event, or None if none came within `timeout_s`."""
        assert self._subscription is not None, "use `async with`"
        try:
            msg = await self._subscription.next_msg(timeout=timeout_s)
        except NatsTimeoutError:
            return None
        return StreamedEvent(
            sequence=msg.metadata.sequence.stream, event=TaskEvent.model_validate_json(msg.data)
        )
