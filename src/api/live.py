"""Following events: shared by the SSE and WebSocket endpoints.

A task's events come from JetStream (all retained ones first, or those after `Last-Event-ID`).
If none arrive for a while the record is checked: a task that ended while its final event was
lost or expired still ends the stream, with an event made from its record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from src.tasks.events import TaskEvent
from src.tasks.jetstream import JetStreamBroker

RECHECK_S = 2.0
CLIENT_IDLE_S = 15.0


async def task_events(
    broker: JetStreamBroker, task_id: str, after: int | None = None
) -> AsyncIterator[tuple[int, TaskEvent]]:
    """(sequence, event) pairs; the last one is terminal. An event made from the record
    carries the last sequence seen, so resuming from it does not repeat anything."""
    last = after or 0
    async with broker.events.follow(broker.layout.task_events(task_id), after) as events:
        while True:
            item = await events.next(RECHECK_S)
            if item is None:
                record = await broker.records.get(task_id)
                if record is None:
                    return
                if record.state.terminal:
                    yield last, TaskEvent.from_record(record)
                    return
                continue
            last = item.sequence
            yield item.sequence, item.event
            if item.event.terminal:
                return


async def client_events(
    broker: JetStreamBroker, client_id: str, after: int | None = None
) -> AsyncIterator[tuple[int, TaskEvent] | None]:
    """Every event of the client's tasks, from now (or after `after`), without end. None comes
    first, once listening has begun, and whenever nothing happened for a while."""
    subject = broker.layout.client_events(client_id)
    async with broker.events.follow(subject, after, only_new=after is None) as events:
        yield None
        while True:
            item = await events.next(CLIENT_IDLE_S)
            yield (item.sequence, item.event) if item is not None else None


def parse_last_event_id(value: str | None) -> int | None:
    if not value:
        return None
    try:
        sequence = int(value)
    except ValueError:
        return None
    return sequence if sequence >= 0 else None
