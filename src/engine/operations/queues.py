"""Steering whole queues: pause and resume consumption, and purge what is queued.

A pause is kept in Redis (it survives restarts) and broadcast, so every worker stops fetching
from the queue within a second; the queue keeps its tasks and its status says it is paused.

A purge drops the queue's queued tasks (not the running ones): each message of the queue's
lanes is read, its record moved to CANCELLED only if it still says PENDING or RETRYING (the
record script decides, so a task a worker starts meanwhile is left alone, and a worker that
fetches a purged task later sees CANCELLED and skips it), and only then is the message removed.
Waiters learn at once: the record carries the cancellation as the task's result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field
from taskiq.result import TaskiqResult

from src.engine.backends.nats import flush
from src.engine.core.errors import LabelError, TaskCancelledError
from src.engine.core.labels import dispatch_of
from src.engine.core.layout import Layout
from src.engine.core.priority import LANES, Lane
from src.engine.core.states import TaskState
from src.engine.core.wire import decode
from src.engine.state.events import EventBus, TaskEvent
from src.engine.state.queue_pauses import QueuePauses
from src.engine.state.results import dump_result
from src.engine.state.transitions import Transition, TransitionWriter

logger = logging.getLogger("taskjet.queues")

_BATCH = 500


class PurgeResult(BaseModel):
    queue: str
    lanes: list[str]
    purged: int = Field(description="Queued tasks dropped and recorded CANCELLED.")
    running: int = Field(description="Tasks running (or already ended) that were left alone.")


class QueueControl:
    def __init__(
        self,
        *,
        pauses: QueuePauses,
        writes: TransitionWriter,
        nc: Callable[[], NATS],
        js: Callable[[], JetStreamContext],
        events: Callable[[], EventBus],
        layout: Callable[[], Layout],
    ) -> None:
        self._pauses = pauses
        self._writes = writes
        self._nc = nc
        self._js = js
        self._events = events
        self._layout = layout

    async def pause(self, queue: str) -> None:
        await self._pauses.pause(queue)
        await self._announce()

    async def resume(self, queue: str) -> None:
        await self._pauses.resume(queue)
        await self._announce()

    async def _announce(self) -> None:
        nc = self._nc()
        await nc.publish(self._layout().queues_subject, b"changed")
        await flush(nc)

    async def purge(self, queue: str, lane: Lane | None = None) -> PurgeResult:
        """Drop the queued tasks of `queue` (one lane, or all three)."""
        lanes = [lane] if lane is not None else list(LANES)
        purged = running = 0
        for one in lanes:
            p, r = await self._purge_subject(self._layout().task_subject(queue, one))
            purged, running = purged + p, running + r
        if purged:
            logger.warning("purged %d queued task(s) from queue %s (%s)", purged, queue, lanes)
        return PurgeResult(queue=queue, lanes=list(lanes), purged=purged, running=running)

    async def _purge_subject(self, subject: str) -> tuple[int, int]:
        js, layout = self._js(), self._layout()
        last = int((await js.stream_info(layout.stream)).state.last_seq)
        sequence, purged, running = 1, 0, 0
        while sequence <= last:
            batch: list[tuple[int, bytes]] = []
            while len(batch) < _BATCH and sequence <= last:
                try:
                    raw = await js.get_msg(layout.stream, seq=sequence, subject=subject, next=True)
                except NotFoundError:
                    sequence = last + 1
                    break
                if (raw.seq or 0) > last:
                    sequence = last + 1
                    break
                batch.append((int(raw.seq or 0), raw.data or b""))
                sequence = int(raw.seq or sequence) + 1
            p, r = await self._drop(batch)
            purged, running = purged + p, running + r
        return purged, running

    async def _drop(self, batch: list[tuple[int, bytes]]) -> tuple[int, int]:
        """Record each queued task CANCELLED (if it still is queued), then delete its message."""
        error = TaskCancelledError("task was purged from its queue before it started")
        result: TaskiqResult[Any] = TaskiqResult(
            is_err=True, return_value=None, execution_time=0.0, error=error
        )
        body = dump_result(result)
        dropping = [_dropping(data, error, body) for _, data in batch]
        transitions = [d[0] if d else None for d in dropping]
        written = await self._writes.apply(t for t in transitions if t is not None)
        outcomes = iter(written)
        js, layout, events = self._js(), self._layout(), self._events()
        purged = running = 0
        deletions = []
        for (sequence, _), found in zip(batch, dropping, strict=True):
            transition, client_id = found if found else (None, None)
            outcome = next(outcomes) if transition is not None else None
            if outcome is not None and outcome.code == "ignored":
                running += 1  # started (or ended) meanwhile: left to its worker
                continue
            deletions.append(js.delete_msg(layout.stream, sequence))
            if transition is not None and outcome is not None and outcome.applied:
                purged += 1
                cancelled = TaskEvent.ended_by(transition.task_id, TaskState.CANCELLED, error)
                await events.publish(cancelled, client_id)
        for deleted in await asyncio.gather(*deletions, return_exceptions=True):
            if isinstance(deleted, Exception) and not isinstance(deleted, NotFoundError):
                logger.warning("a purged message was not deleted: %s", deleted)
        return purged, running


def _dropping(data: bytes, error: Exception, result: bytes) -> tuple[Transition, str | None] | None:
    """The transition that cancels the task in `data`, and its client id; None for a body
    that is not a task (it is deleted all the same: nothing could ever run it)."""
    try:
        message = decode(data)
        dispatch = dispatch_of(message.labels)
    except (ValueError, LabelError):
        return None
    client_id = message.labels.get("client_id")
    transition = Transition(
        message.task_id,
        message.task_name,
        TaskState.CANCELLED,
        "drop",
        {
            "finished_at": time.time(),
            "error_type": type(error).__name__,
            "error_message": str(error),
        },
        dispatch=dispatch,
        result=result,
    )
    return transition, client_id if isinstance(client_id, str) else None
