"""Steering tasks by id: cancel, retry, delete, and requeue tasks whose worker died.

Used by the HTTP API and from Python:

    from src.tasks.control import cancel
    await cancel(task_id)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from taskiq.result import TaskiqResult

from src.tasks.errors import TaskCancelledError
from src.tasks.events import TaskEvent
from src.tasks.formatter import decode
from src.tasks.records import TaskRecord, Transition
from src.tasks.states import TaskState

if TYPE_CHECKING:
    from src.tasks.jetstream import JetStreamBroker

logger = logging.getLogger("taskjet.control")


class TaskNotFoundError(LookupError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id!r} (unknown, or its record expired)")
        self.task_id = task_id


class TaskConflictError(RuntimeError):
    """The task is in a state that does not allow the operation."""

    def __init__(self, message: str, state: TaskState) -> None:
        super().__init__(message)
        self.state = state


class OrphansRequeued(BaseModel):
    handed_back: list[str]
    republished: list[str]


class TaskControl:
    def __init__(self, broker: JetStreamBroker) -> None:
        self._broker = broker

    async def record(self, task_id: str) -> TaskRecord:
        """The task's record; `TaskNotFoundError` (404 over HTTP) if there is none."""
        record = await self._broker.records.get(task_id)
        if record is None:
            raise TaskNotFoundError(task_id)
        return record

    async def cancel(self, task_id: str) -> TaskRecord:
        """A queued task never starts; a running one is cancelled on whichever worker has it."""
        broker = self._broker
        record = await self.record(task_id)
        if record.state.terminal:
            raise TaskConflictError(
                f"task {task_id} already ended ({record.state.value}); nothing to cancel",
                record.state,
            )
        error = TaskCancelledError.before_start() if not record.state.active else None
        before = await broker.records.submit(
            Transition(task_id, record.task_name, TaskState.CANCELLED)
        )
        if before is not None and before.terminal:
            raise TaskConflictError(f"task {task_id} ended ({before.value}) meanwhile", before)
        # Workers holding it cancel it; one that fetches it later sees the record and skips it.
        await broker.nc.publish(broker.layout.cancel_subject, task_id.encode())
        if record.due_at:  # a delayed task: drop its schedule, it never becomes due
            await broker.js.purge_stream(
                broker.layout.schedules_stream, subject=broker.layout.delayed_subject(task_id)
            )
        if error is not None:
            # Nobody is running it: the waiters learn now, not when a worker gets to it.
            result: TaskiqResult[Any] = TaskiqResult(
                is_err=True, return_value=None, execution_time=0.0, error=error
            )
            await broker.results.redis.set(
                broker.layout.result_key(task_id),
                result.model_dump_json(),
                ex=broker.settings.result_ttl_s,
                nx=True,
            )
            await broker.events.publish(
                TaskEvent.of(task_id, TaskState.CANCELLED, str(error)), record.client_id
            )
        return await self.record(task_id)

    async def retry(self, task_id: str) -> TaskRecord:
        """Run a failed, dead or cancelled task again with the same arguments and id."""
        broker = self._broker
        record = await self.record(task_id)
        if record.state not in (TaskState.FAILURE, TaskState.DEAD, TaskState.CANCELLED):
            raise TaskConflictError(
                f"only failed, dead or cancelled tasks can be retried; {task_id} is "
                f"{record.state.value}",
                record.state,
            )
        payload = await broker.records.payload(task_id)
        if payload is None:
            raise TaskConflictError(
                f"task {task_id} was too large to keep (TASKJET_RECORD_PAYLOAD_MAX_BYTES); "
                "dispatch it again instead",
                record.state,
            )
        message = decode(payload)
        message.labels["dispatch"] = int(message.labels.get("dispatch", 1)) + 1
        for transient in ("attempt", "redelivered"):
            message.labels.pop(transient, None)
        await broker.redispatch(message, record.queue)
        await broker.dlq.remove(task_id)
        return await self.record(task_id)

    async def delete(self, task_id: str) -> None:
        """Forget a finished task: its record, result and counters."""
        record = await self.record(task_id)
        if not record.state.terminal:
            raise TaskConflictError(
                f"task {task_id} is {record.state.value}; cancel it before deleting it",
                record.state,
            )
        await self._broker.records.delete(record)

    async def requeue_orphaned(self) -> OrphansRequeued:
        """Hand back tasks recorded as running on workers that no longer report.

        The task's message is still in the stream, leased to the dead worker: a nak on its
        ack subject makes JetStream deliver it again now instead of after `ack_wait`. A task
        whose message is gone is dispatched again from its record.
        """
        broker = self._broker
        alive = {w.worker_id for w in await broker.workers.alive()}
        ids = await broker.records.ids_in((TaskState.STARTED, TaskState.PROGRESS))
        handed_back: list[str] = []
        republished: list[str] = []
        for record in await broker.records.get_many(ids):
            if record is None or not record.state.active or record.worker in alive:
                continue
            raw: Any = await broker.results.redis.hmget(
                broker.layout.record_key(record.task_id), ["ack", "seq"]
            )
            ack, seq = (v.decode() if v else None for v in raw)
            if seq and await self._in_stream(int(seq)) and ack:
                await broker.nc.publish(ack, b"-NAK")
                await broker.records.apply(
                    [Transition(record.task_id, record.task_name, TaskState.PENDING)]
                )
                handed_back.append(record.task_id)
                continue
            payload = await broker.records.payload(record.task_id)
            if payload is None:
                logger.warning("orphaned task %s cannot be republished: too large", record.task_id)
                continue
            message = decode(payload)
            message.labels["dispatch"] = int(message.labels.get("dispatch", 1)) + 1
            await broker.redispatch(message, record.queue)
            republished.append(record.task_id)
        await broker.nc.flush()
        return OrphansRequeued(handed_back=handed_back, republished=republished)

    async def _in_stream(self, sequence: int) -> bool:
        broker = self._broker
        try:
            await broker.js.get_msg(broker.layout.stream, seq=sequence)
        except Exception:
            return False
        return True


async def cancel(task_id: str, broker: JetStreamBroker | None = None) -> TaskRecord:
    """Cancel a task by id (see `TaskControl.cancel`)."""
    if broker is None:
        from src.tasks.broker import broker as app_broker

        broker = app_broker
    return await broker.control.cancel(task_id)


__all__ = [
    "OrphansRequeued",
    "TaskConflictError",
    "TaskControl",
    "TaskNotFoundError",
    "cancel",
]
