"""Task events on JetStream: every state change and progress update, once, for live updates.

Each event goes to `<prefix>.events.<client or _>.<task id>` in a short-retention stream, so a
listener can follow one task or every task of one client, and resume from the sequence it saw
last (SSE `Last-Event-ID`). Events are published without waiting for the stream's ack: they
are a view of the task record, which stays the source of truth.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import orjson
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from pydantic import BaseModel, Field

from src.config import Settings
from src.tasks.layout import Layout
from src.tasks.records import Progress, TaskRecord
from src.tasks.states import EVENT_STATUS, TERMINAL_EVENTS, TaskState

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

logger = logging.getLogger("taskjet.events")


class TaskEvent(BaseModel):
    task_id: str
    status: str = Field(description="started, processing, completed, error, cancelled, retrying")
    message: str | None = None
    progress: float | None = None
    total: float | None = None
    stage: str | None = None
    timestamp: float = Field(default_factory=time.time, description="Unix time.")

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
    def from_record(cls, record: TaskRecord) -> TaskEvent:
        """The event a record's current state stands for (when its events have expired)."""
        message = record.error.message if record.error else None
        return cls.of(record.task_id, record.state, message, record.progress).model_copy(
            update={"timestamp": record.finished_at or record.started_at or time.time()}
        )


class StreamedEvent(BaseModel):
    sequence: int
    event: TaskEvent


def events_stream_config(settings: Settings, layout: Layout) -> StreamConfig:
    return StreamConfig(
        name=layout.events_stream,
        description="taskjet task events",
        subjects=[layout.events_subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=settings.events_max_age_s,
        duplicate_window=min(settings.duplicate_window_s, settings.events_max_age_s),
        num_replicas=settings.stream_replicas,
    )


class EventBus:
    """Publishes and follows task events."""

    def __init__(self, nc: NATS, layout: Layout) -> None:
        self._nc = nc
        self._layout = layout

    async def publish(self, event: TaskEvent, client_id: str | None = None) -> None:
        try:
            await self._nc.publish(
                self._layout.event_subject(event.task_id, client_id),
                orjson.dumps(event.model_dump()),
            )
        except Exception as exc:  # a view, not the record: never fail a task over it
            logger.warning("event for %s not published: %s", event.task_id, exc)

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
    """An ordered, ephemeral consumer of events; gone when the `async with` block ends."""

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
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None

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
