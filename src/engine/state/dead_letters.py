"""The dead-letter queue: a JetStream stream of tasks taskjet gave up on, with the reason.

Nothing leaves the task stream without a trace: a task that failed for good, exhausted its
retries, expired, crashed workers again and again, could not be decoded, or was never known to
any worker is written here first, and only then removed from the queue. Entries can be listed,
requeued (they run again with fresh attempt counters) and purged.
"""

from __future__ import annotations

import base64
import logging
import time
import traceback as tb
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import orjson
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field, ValidationError
from taskiq.message import TaskiqMessage

from src.engine.core.errors import LabelError
from src.engine.core.labels import dispatch_of, next_dispatch, queue_of
from src.engine.core.layout import Layout
from src.engine.core.priority import lane_of

logger = logging.getLogger("taskjet.dlq")

Reason = Literal[
    "failed", "exhausted", "undecodable", "unknown_task", "expired", "poison", "invalid"
]
# Room left in a NATS message for headers and the JSON around the fields that are cut.
_HEADROOM = 4096
_ERROR_MESSAGE_MAX = 2000
_TRACEBACK_MAX = 8000
Redispatch = Callable[[TaskiqMessage, str], Awaitable[None]]


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
    truncated: bool = Field(
        default=False,
        description="The entry was too large for a message: arguments, labels or the raw body "
        "were left out, so it cannot be requeued from here.",
    )
    sequence: int | None = Field(default=None, description="Position in the dead-letter stream.")

    def fitted(self, max_bytes: int) -> bytes:
        """The entry as JSON within `max_bytes`: long texts cut first, then arguments and
        labels left out, then the raw body, then all but the essentials; whatever was left
        out is marked `truncated`."""
        cut = {
            "error_message": (self.error_message or "")[:_ERROR_MESSAGE_MAX] or None,
            "traceback": (self.traceback or "")[-_TRACEBACK_MAX:] or None,
        }
        steps: list[dict[str, Any]] = [
            {},
            cut,
            {**cut, "args": [], "kwargs": {}, "labels": {}, "truncated": True},
            {**cut, "args": [], "kwargs": {}, "labels": {}, "payload_b64": None, "truncated": True},
        ]
        for update in steps:
            body = self.model_copy(update=update).model_dump_json(exclude={"sequence"}).encode()
            if len(body) <= max_bytes:
                return body
        essentials = DeadLetter(
            task_id=self.task_id[:128],
            task_name=self.task_name[:256],
            queue=self.queue,
            reason=self.reason,
            attempts=self.attempts,
            error_type=(self.error_type or "")[:256] or None,
            error_message=(self.error_message or "")[:256] or None,
            failed_at=self.failed_at,
            truncated=True,
        )
        return essentials.model_dump_json(exclude={"sequence"}).encode()

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
            error_message=str(error)[:_ERROR_MESSAGE_MAX] if error else None,
            traceback="".join(tb.format_exception(error))[-_TRACEBACK_MAX:] if error else None,
            labels=message.labels,
            args=message.args,
            kwargs=message.kwargs,
        )

    @classmethod
    def undecodable(
        cls, data: bytes, queue: str, error: Exception, task_id: str | None = None
    ) -> DeadLetter:
        return cls(
            task_id=task_id or "",
            task_name="",
            queue=queue,
            reason="undecodable",
            error_type=type(error).__name__,
            error_message=str(error)[:_ERROR_MESSAGE_MAX],
            payload_b64=base64.b64encode(data).decode(),
        )


class DeadLetterQueue:
    """List, requeue and purge dead letters; used by workers, the CLI and the API."""

    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        layout: Callable[[], Layout],
        max_payload: Callable[[], int],
        redispatch: Redispatch,
    ) -> None:
        self._js = js
        self._layout = layout
        self._max_payload = max_payload
        self._redispatch = redispatch

    async def add(self, entry: DeadLetter, source_sequence: int) -> None:
        """Store an entry, cut to fit in one message; a repeat for the same source message is
        de-duplicated."""
        body = entry.fitted(self._max_payload() - _HEADROOM)
        await self._js().publish(
            self._layout().dlq_subject(entry.queue),
            body,
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
        info = await self._js().stream_info(self._layout().dlq_stream)
        return int(info.state.messages)

    async def requeue(
        self,
        task_ids: list[str] | None = None,
        task_name: str | None = None,
        on_skip: Callable[[DeadLetter, str], None] | None = None,
    ) -> list[str]:
        """Run dead tasks again: those named by id, those of `task_name`, or (neither) all.

        Each runs with fresh attempt counters and a new dispatch number, so JetStream's
        de-duplication does not mistake it for the original. Undecodable entries stay, and so
        do entries that cannot run as stored (a bad queue, `dispatch` or `priority`): each of
        those is logged and told to `on_skip` with the reason, and the others still run.
        """
        js, layout = self._js(), self._layout()
        wanted: set[str] = set(task_ids or [])
        requeued: list[str] = []
        async for entry in self._scan():
            if entry.reason == "undecodable" or entry.truncated:
                continue  # nothing to run it from
            if wanted and entry.task_id not in wanted:
                continue
            if task_name is not None and entry.task_name != task_name:
                continue
            problem = _unrunnable(entry)
            if problem is not None:
                logger.warning("dead letter %s not requeued: %s", entry.task_id, problem)
                if on_skip is not None:
                    on_skip(entry, problem)
                continue
            message = TaskiqMessage(
                task_id=entry.task_id,
                task_name=entry.task_name,
                labels=entry.labels,
                args=entry.args,
                kwargs=entry.kwargs,
            )
            await self._redispatch(next_dispatch(message), entry.queue)
            assert entry.sequence is not None
            await js.delete_msg(layout.dlq_stream, entry.sequence)
            requeued.append(entry.task_id)
        return requeued

    async def remove(self, task_id: str) -> int:
        """Delete the dead letters of one task (it was retried by id)."""
        removed = 0
        async for entry in self._scan():
            if entry.task_id == task_id and entry.sequence is not None:
                await self._js().delete_msg(self._layout().dlq_stream, entry.sequence)
                removed += 1
        return removed

    async def purge(self, task_name: str | None = None) -> int:
        """Delete dead letters for good: all of them, or those of `task_name`."""
        js, layout = self._js(), self._layout()
        if task_name is None:
            count = await self.count()
            await js.purge_stream(layout.dlq_stream)
            return count
        deleted = 0
        async for entry in self._scan():
            if entry.task_name == task_name and entry.sequence is not None:
                await js.delete_msg(layout.dlq_stream, entry.sequence)
                deleted += 1
        return deleted

    async def _scan(self) -> AsyncIterator[DeadLetter]:
        """Every entry in stream order, read with direct gets (no consumer to clean up)."""
        js, layout = self._js(), self._layout()
        # Only what is there now: entries added meanwhile (a requeued task failing again)
        # wait for the next call.
        info = await js.stream_info(layout.dlq_stream)
        last = int(info.state.last_seq)
        sequence = 1
        while sequence <= last:
            try:
                raw = await js.get_msg(
                    layout.dlq_stream,
                    seq=sequence,
                    subject=layout.dlq_subjects,
                    next=True,
                )
            except NotFoundError:
                return
            if (raw.seq or 0) > last:
                return
            sequence = (raw.seq or sequence) + 1
            try:
                entry = DeadLetter.model_validate(orjson.loads(raw.data or b"{}"))
            except (orjson.JSONDecodeError, ValidationError) as exc:
                # Anyone who may publish to NATS can put anything here: pass over it.
                logger.warning("dead-letter stream message %s is no dead letter: %s", raw.seq, exc)
                continue
            entry.sequence = raw.seq
            yield entry


def _unrunnable(entry: DeadLetter) -> str | None:
    """Why a dead letter cannot be dispatched again as stored, or None."""
    if not entry.task_id or not entry.task_name:
        return "no task id or name"
    try:
        queue_of({"queue_name": entry.queue}, "default")
        dispatch_of(entry.labels)
        lane_of(entry.labels)
    except LabelError as exc:
        return str(exc)
    return None
