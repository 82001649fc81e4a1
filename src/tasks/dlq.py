"""The dead-letter queue: a JetStream stream of tasks taskjet gave up on, with the reason.

Nothing leaves the task stream without a trace: a task that failed for good, exhausted its
retries, expired, crashed workers again and again, could not be decoded, or was never known to
any worker is written here first, and only then removed from the queue. Entries can be listed,
requeued (they run again with fresh attempt counters) and purged.
"""

from __future__ import annotations

import base64
import time
import traceback as tb
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import orjson
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field
from taskiq.message import TaskiqMessage

from src.config import Settings
from src.tasks.layout import Layout

if TYPE_CHECKING:
    from src.tasks.jetstream import JetStreamBroker

Reason = Literal["failed", "exhausted", "undecodable", "unknown_task", "expired", "poison"]


class DeadLetter(BaseModel):  # type: ignore[no-redef]  # pydantic plugin: field `kwargs`
    """One dead task: enough to understand what happened and to run it again."""

    task_id: str
    task_name: str
    queue: str
    reason: Reason
    attempts: int = 0
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    failed_at: float = Field(default_factory=time.time, description="Unix time.")
    labels: dict[str, Any] = Field(default_factory=dict)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    payload_b64: str | None = Field(default=None, description="Raw body of an undecodable task.")
    sequence: int | None = Field(default=None, description="Position in the dead-letter stream.")

    @classmethod
    def of(
        cls,
        message: TaskiqMessage,
        queue: str,
        reason: Reason,
        attempts: int,
        error: BaseException | None = None,
    ) -> DeadLetter:
        return cls(
            task_id=message.task_id,
            task_name=message.task_name,
            queue=queue,
            reason=reason,
            attempts=attempts,
            error_type=type(error).__name__ if error else None,
            error_message=str(error) if error else None,
            traceback="".join(tb.format_exception(error)) if error else None,
            labels=message.labels,
            args=message.args,
            kwargs=message.kwargs,
        )

    @classmethod
    def undecodable(cls, data: bytes, queue: str, error: Exception) -> DeadLetter:
        return cls(
            task_id="",
            task_name="",
            queue=queue,
            reason="undecodable",
            error_type=type(error).__name__,
            error_message=str(error)[:2000],
            payload_b64=base64.b64encode(data).decode(),
        )


def dlq_stream_config(settings: Settings, layout: Layout) -> StreamConfig:
    return StreamConfig(
        name=layout.dlq_stream,
        description="taskjet dead letters",
        subjects=[layout.dlq_subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_age=settings.dlq_max_age_s,
        duplicate_window=settings.duplicate_window_s,
        num_replicas=settings.stream_replicas,
    )


class DeadLetterQueue:
    """List, requeue and purge dead letters; used by workers, the CLI and the API."""

    def __init__(self, broker: JetStreamBroker) -> None:
        self._broker = broker

    async def add(self, entry: DeadLetter, source_sequence: int) -> None:
        """Store an entry; a repeat for the same source message is de-duplicated."""
        broker = self._broker
        await broker.js.publish(
            broker.layout.dlq_subject(entry.queue),
            entry.model_dump_json(exclude={"sequence"}).encode(),
            headers={"Nats-Msg-Id": f"dlq:{entry.task_id}:{source_sequence}"},
        )

    async def entries(self, task_name: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Oldest first; at most `limit` entries, optionally only those of `task_name`."""
        entries: list[DeadLetter] = []
        async for entry in self._scan():
            if task_name is None or entry.task_name == task_name:
                entries.append(entry)
                if len(entries) >= limit:
                    break
        return entries

    async def count(self) -> int:
        info = await self._broker.js.stream_info(self._broker.layout.dlq_stream)
        return int(info.state.messages)

    async def requeue(
        self, task_ids: list[str] | None = None, task_name: str | None = None
    ) -> list[str]:
        """Run dead tasks again: those named by id, those of `task_name`, or (neither) all.

        Each runs with fresh attempt counters and a new dispatch number, so JetStream's
        de-duplication does not mistake it for the original. Undecodable entries stay.
        """
        broker = self._broker
        wanted: set[str] = set(task_ids or [])
        requeued: list[str] = []
        async for entry in self._scan():
            if entry.reason == "undecodable":
                continue
            if wanted and entry.task_id not in wanted:
                continue
            if task_name is not None and entry.task_name != task_name:
                continue
            labels = dict(entry.labels)
            labels["dispatch"] = int(labels.get("dispatch", 1)) + 1
            for transient in ("attempt", "redelivered"):
                labels.pop(transient, None)
            message = TaskiqMessage(
                task_id=entry.task_id,
                task_name=entry.task_name,
                labels=labels,
                args=entry.args,
                kwargs=entry.kwargs,
            )
            await broker.redispatch(message, entry.queue)
            assert entry.sequence is not None
            await broker.js.delete_msg(broker.layout.dlq_stream, entry.sequence)
            requeued.append(entry.task_id)
        return requeued

    async def remove(self, task_id: str) -> int:
        """Delete the dead letters of one task (it was retried by id)."""
        removed = 0
        async for entry in self._scan():
            if entry.task_id == task_id and entry.sequence is not None:
                await self._broker.js.delete_msg(self._broker.layout.dlq_stream, entry.sequence)
                removed += 1
        return removed

    async def purge(self, task_name: str | None = None) -> int:
        """Delete dead letters for good: all of them, or those of `task_name`."""
        broker = self._broker
        if task_name is None:
            count = await self.count()
            await broker.js.purge_stream(broker.layout.dlq_stream)
            return count
        deleted = 0
        async for entry in self._scan():
            if entry.task_name == task_name and entry.sequence is not None:
                await broker.js.delete_msg(broker.layout.dlq_stream, entry.sequence)
                deleted += 1
        return deleted

    async def _scan(self) -> AsyncIterator[DeadLetter]:
        """Every entry in stream order, read with direct gets (no consumer to clean up)."""
        broker = self._broker
        # Only what is there now: entries added meanwhile (a requeued task failing again)
        # wait for the next call.
        info = await broker.js.stream_info(broker.layout.dlq_stream)
        last = int(info.state.last_seq)
        sequence = 1
        while sequence <= last:
            try:
                raw = await broker.js.get_msg(
                    broker.layout.dlq_stream,
                    seq=sequence,
                    subject=broker.layout.dlq_subjects,
                    next=True,
                )
            except NotFoundError:
                return
            if (raw.seq or 0) > last:
                return
            entry = DeadLetter.model_validate(orjson.loads(raw.data or b"{}"))
            entry.sequence = raw.seq
            yield entry
            sequence = (raw.seq or sequence) + 1
