"""Following events: shared by the SSE and WebSocket endpoints.

A task's events come from JetStream (all retained ones first, or those after `Last-Event-ID`).
If none arrive for a while the record is checked: a task that ended while its final event was
lost or expired still ends the stream, with an event made from its record. A stream that
carried no task event for `TASKJET_STREAM_IDLE_TIMEOUT_S` ends with an `Idle` item, so a
forgotten follower never holds its JetStream consumer for good; the client reconnects (with
`Last-Event-ID`) to go on.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import orjson
from starlette.requests import HTTPConnection

from src.api.errors import UnprocessableError
from src.api.links import absolute
from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from src.engine.state.events import TaskEvent
from src.engine.state.record import TaskRecord

RECHECK_S = 2.0
RECHECK_MAX_S = 15.0
CLIENT_IDLE_S = 15.0
_SEQUENCE = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class Idle:
    """The stream's last item: nothing happened for `seconds`."""

    seconds: float

    @property
    def message(self) -> str:
        return f"no events for {self.seconds:g} s: reconnect to keep following"


@dataclass(frozen=True, slots=True)
class Ready:
    """A client stream's first item: its subscription is in place, so every event of a task
    dispatched from now on reaches it (a client that waits for it misses none)."""

    client_id: str

    def to_json(self) -> str:
        return orjson.dumps({"type": "ready", "client_id": self.client_id}).decode()


async def task_events(
    broker: JetStreamBroker, task_id: str, after: int | None = None
) -> AsyncGenerator[tuple[int, TaskEvent] | Idle, None]:
    """(sequence, event) pairs; the last one is terminal, or an `Idle`. An event made from the
    record carries the last sequence seen, so resuming from it does not repeat anything.

    While nothing happens the record is checked at growing intervals (2 s up to 15 s): many
    followers of quiet tasks cost Redis little."""
    idle_s = broker.settings.stream_idle_timeout_s
    last = after or 0
    recheck = RECHECK_S
    quiet_since = time.monotonic()
    async with broker.events.follow(broker.layout.task_events(task_id), after) as events:
        while True:
            left = idle_s - (time.monotonic() - quiet_since)
            if left <= 0:
                yield Idle(idle_s)
                return
            item = await events.next(min(recheck, left))
            if item is None:
                record = await broker.records.get(task_id)
                if record is None:
                    return
                if record.state.terminal:
                    yield last, await final_from_record(broker, record)
                    return
                recheck = min(recheck * 2, RECHECK_MAX_S)
                continue
            last, recheck, quiet_since = item.sequence, RECHECK_S, time.monotonic()
            yield item.sequence, item.event
            if item.event.terminal:
                return


async def client_events(
    broker: JetStreamBroker, client_id: str, after: int | None = None
) -> AsyncGenerator[tuple[int, TaskEvent] | Ready | Idle | None, None]:
    """Every event of the client's tasks, from now (or after `after`), until none came for the
    idle timeout (then an `Idle`). `Ready` comes first, once listening has begun; None whenever
    nothing happened for a while."""
    idle_s = broker.settings.stream_idle_timeout_s
    subject = broker.layout.client_events(client_id)
    async with broker.events.follow(subject, after, only_new=after is None) as events:
        yield Ready(client_id)
        quiet_since = time.monotonic()
        while True:
            left = idle_s - (time.monotonic() - quiet_since)
            if left <= 0:
                yield Idle(idle_s)
                return
            item = await events.next(min(CLIENT_IDLE_S, left))
            if item is None:
                yield None
                continue
            quiet_since = time.monotonic()
            yield item.sequence, item.event


async def final_from_record(broker: JetStreamBroker, record: TaskRecord) -> TaskEvent:
    """The final event of a task whose own final event was lost or expired, with its result."""
    event = TaskEvent.from_record(record)
    if record.state is not TaskState.SUCCESS:
        return event
    raw = await broker.results.redis.get(broker.layout.result_key(record.task_id))
    return event.with_outcome(raw, None, broker.settings.event_result_max_bytes)


def event_view(connection: HTTPConnection) -> Callable[[TaskEvent], str]:
    """Events as JSON for this client: one whose result was left out for its size links to
    the record (`record`), where the whole result is."""

    def view(event: TaskEvent) -> str:
        if not event.result_omitted:
            return event.to_json()
        path = connection.app.url_path_for("get_task", task_id=event.task_id)
        body = {**event.public(), "record": absolute(connection, path)}
        return orjson.dumps(body).decode()

    return view


def parse_last_event_id(value: str | None) -> int | None:
    """A `Last-Event-ID` header: absent, or a stream sequence (an integer 0 ≤ n < 2**63)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not _SEQUENCE.fullmatch(text) or int(text) >= 2**63:
        raise UnprocessableError(
            "Last-Event-ID must be an event id this stream sent (an integer below 2**63)",
            [{"loc": ["header", "last-event-id"], "msg": "not a stream sequence"}],
        )
    return int(text)
