"""Steering tasks by id: cancel, retry, delete, and requeue tasks whose worker died.

Used by the HTTP API and from Python:

    from src.tasks.broker import cancel
    await cancel(task_id)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import BaseModel
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from src.config import Settings
from src.engine.backends.nats import flush
from src.engine.core.errors import TaskCancelledError, TaskConflictError, TaskNotFoundError
from src.engine.core.labels import next_dispatch
from src.engine.core.layout import Layout
from src.engine.core.states import TaskState
from src.engine.core.wire import decode
from src.engine.state.artifacts import ArtifactStore
from src.engine.state.dead_letters import DeadLetterQueue
from src.engine.state.events import EventBus, TaskEvent
from src.engine.state.record import TaskRecord
from src.engine.state.records import TaskRecords
from src.engine.state.results import dump_result
from src.engine.state.transitions import Transition
from src.engine.worker.registry import WorkerRegistry

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker

logger = logging.getLogger("taskjet.control")

Redispatch = Callable[[TaskiqMessage, str | None], Awaitable[None]]


class OrphansRequeued(BaseModel):
    handed_back: list[str]
    republished: list[str]


class TaskControl:
    def __init__(
        self,
        *,
        records: TaskRecords,
        artifacts: ArtifactStore,
        workers: WorkerRegistry,
        dlq: DeadLetterQueue,
        redispatch: Redispatch,
        nc: Callable[[], NATS],
        js: Callable[[], JetStreamContext],
        events: Callable[[], EventBus],
        layout: Callable[[], Layout],
        settings: Callable[[], Settings],
    ) -> None:
        self._records = records
        self._artifacts = artifacts
        self._workers = workers
        self._dlq = dlq
        self._redispatch = redispatch
        self._nc = nc
        self._js = js
        self._events = events
        self._layout = layout
        self._settings = settings

    async def record(self, task_id: str) -> TaskRecord:
        """The task's record; `TaskNotFoundError` (404 over HTTP) if there is none."""
        record = await self._records.get(task_id)
        if record is None:
            raise TaskNotFoundError(task_id)
        return record

    async def cancel(self, task_id: str) -> TaskRecord:
        """A queued task never starts; a running one is cancelled on whichever worker has it."""
        layout = self._layout()
        record = await self.record(task_id)
        if record.state.terminal:
            raise TaskConflictError(
                f"task {task_id} already ended ({record.state.value}); nothing to cancel",
                record.state,
            )
        queued = not record.state.active
        error = TaskCancelledError.before_start()
        result: TaskiqResult[Any] = TaskiqResult(
            is_err=True, return_value=None, execution_time=0.0, error=error
        )
        written = await self._records.submit(
            Transition(
                task_id,
                record.task_name,
                TaskState.CANCELLED,
                fields={
                    "finished_at": time.time(),
                    "error_type": type(error).__name__,
                    "error_message": str(error),
                }
                if queued
                else {},
                # Nobody runs a queued task: its waiters learn now, not when a worker gets to it.
                result=dump_result(result) if queued else None,
            )
        )
        if not written.applied:
            before = written.before or record.state
            raise TaskConflictError(f"task {task_id} ended ({before.value}) meanwhile", before)
        # Workers holding it cancel it; one that fetches it later sees the record and skips it.
        await self._nc().publish(layout.cancel_subject, task_id.encode())
        if record.due_at:  # a delayed task: drop its schedule, it never becomes due
            await self._js().purge_stream(
                layout.schedules_stream, subject=layout.delayed_subject(task_id)
            )
        if queued:
            await self._events().publish(
                TaskEvent.ended_by(task_id, TaskState.CANCELLED, error), record.client_id
            )
        return await self.record(task_id)

    async def retry(self, task_id: str) -> TaskRecord:
        """Run a failed, dead or cancelled task again with the same arguments and id."""
        record = await self.record(task_id)
        if record.state not in (TaskState.FAILURE, TaskState.DEAD, TaskState.CANCELLED):
            raise TaskConflictError(
                f"only failed, dead or cancelled tasks can be retried; {task_id} is "
                f"{record.state.value}",
                record.state,
            )
        payload = await self._records.payload(task_id)
        if payload is None:
            raise TaskConflictError(
                f"task {task_id} was too large to keep (TASKJET_RECORD_PAYLOAD_MAX_BYTES); "
                "dispatch it again instead",
                record.state,
            )
        await self._redispatch(next_dispatch(decode(payload)), record.queue)
        await self._dlq.remove(task_id)
        return await self.record(task_id)

    async def delete(self, task_id: str) -> None:
        """Forget a finished task: its record, result, counters and files."""
        record = await self.record(task_id)
        if not record.state.terminal:
            raise TaskConflictError(
                f"task {task_id} is {record.state.value}; cancel it before deleting it",
                record.state,
            )
        await self._records.delete(record)
        await self._artifacts.delete_all(task_id)

    async def requeue_orphaned(self) -> OrphansRequeued:
        """Hand back tasks recorded as running on workers that no longer report.

        The task's message is still in the stream, leased to the dead worker: a nak on its
        ack subject makes JetStream deliver it again now instead of after `ack_wait`. A task
        whose message is gone is dispatched again from its record.
        """
        layout = self._layout()
        alive = {w.worker_id for w in await self._workers.alive()}
        ids = await self._records.ids_in((TaskState.STARTED, TaskState.PROGRESS))
        handed_back: list[str] = []
        republished: list[str] = []
        for record in await self._records.get_many(ids):
            if record is None or not record.state.active or record.worker in alive:
                continue
            raw: Any = await self._records.redis.hmget(
                layout.record_key(record.task_id), ["ack", "seq"]
            )
            ack, seq = (v.decode() if v else None for v in raw)
            if seq and await self._in_stream(int(seq)) and ack:
                await self._nc().publish(ack, b"-NAK")
                await self._records.apply(
                    [Transition(record.task_id, record.task_name, TaskState.PENDING)]
                )
                handed_back.append(record.task_id)
                continue
            payload = await self._records.payload(record.task_id)
            if payload is None:
                logger.warning("orphaned task %s cannot be republished: too large", record.task_id)
                continue
            await self._redispatch(next_dispatch(decode(payload)), record.queue)
            republished.append(record.task_id)
        await flush(self._nc())
        return OrphansRequeued(handed_back=handed_back, republished=republished)

    async def _in_stream(self, sequence: int) -> bool:
        try:
            await self._js().get_msg(self._layout().stream, seq=sequence)
        except Exception:
            return False
        return True


async def cancel(task_id: str, broker: JetStreamBroker | None = None) -> TaskRecord:
    """Cancel a task by id (see `TaskControl.cancel`)."""
    if broker is None:
        from src.tasks.broker import broker as app_broker

        broker = app_broker
    return await broker.control.cancel(task_id)


__all__ = ["OrphansRequeued", "TaskControl", "cancel"]
