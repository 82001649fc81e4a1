"""Task records in Redis: one hash per task, plus sorted-set indexes for listing and counting.

    <prefix>:task:<id>                the record (a hash), expiring with the result
    <prefix>:idx:all                  every task id, scored by queue time (µs)
    <prefix>:idx:state:<STATE>        ids in that state
    <prefix>:idx:name:<task name>     ids of that task

Writes go through `transitions.py` (one script, ordered by dispatch and attempt); this module
builds the record of a dispatch, redacts what it shows, and reads records back by id or page.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from taskiq.message import TaskiqMessage

from src.engine.core.labels import dispatch_of
from src.engine.core.layout import Layout
from src.engine.core.redaction import redact_arguments
from src.engine.core.states import TaskState
from src.engine.state import listing
from src.engine.state.listing import Page, RecordFilter
from src.engine.state.record import TaskRecord
from src.engine.state.transitions import Transition, TransitionWriter, Written

if TYPE_CHECKING:
    from src.config import Settings

_NO_ARGUMENTS = (b"[]", b"{}")

Redactor = Callable[[str, list[Any], dict[str, Any]], tuple[list[Any], dict[str, Any]]]


def default_redactor(
    _task_name: str, args: list[Any], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Hide values under keys named like secrets, at any depth (`core/redaction.py`)."""
    return redact_arguments(args, kwargs)


class TaskRecords:
    """Reads and writes task records; one instance per broker."""

    def __init__(
        self,
        redis: Callable[[], Redis],
        settings: Callable[[], Settings],
        layout: Callable[[], Layout],
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._layout = layout
        self.writes = TransitionWriter(
            redis,
            layout,
            lambda: settings().result_ttl_s,
            lambda: (settings().redis_wait_replicas, settings().redis_wait_timeout_s),
            lambda: (settings().stats_retention_s, settings().default_queue),
        )
        self.redact: Redactor = default_redactor

    @property
    def redis(self) -> Redis:
        return self._redis()

    @property
    def layout(self) -> Layout:
        return self._layout()

    async def apply(self, transitions: Iterable[Transition]) -> list[Written]:
        """Write transitions in one round trip (see `transitions.py`)."""
        return await self.writes.apply(transitions)

    async def submit(self, transition: Transition) -> Written:
        return await self.writes.submit(transition)

    def queued(
        self,
        message: TaskiqMessage,
        queue: str,
        payload: bytes,
        *,
        queued_at: float,
        due_at: float | None = None,
    ) -> Transition:
        """The record of a task just dispatched (or dispatched again). `queued_at` is taken
        before the publish: a worker may start the task before this record is written."""
        settings = self._settings()
        if not message.args and not message.kwargs and self.redact is default_redactor:
            shown = _NO_ARGUMENTS  # nothing to hide
        else:
            args, kwargs = self.redact(message.task_name, list(message.args), dict(message.kwargs))
            shown = orjson.dumps(args), orjson.dumps(kwargs)
        fields: dict[str, str | float | int] = {"queue": queue, "queued_at": queued_at}
        if len(shown[0]) + len(shown[1]) <= settings.record_args_max_bytes:
            fields["args"], fields["kwargs"] = shown[0].decode(), shown[1].decode()
            fields["args_truncated"] = 0
        else:
            fields["args_truncated"] = 1
        if len(payload) <= settings.record_payload_max_bytes:
            fields["payload"] = base64.b64encode(payload).decode()
        client_id = message.labels.get("client_id")
        if client_id:
            fields["client_id"] = str(client_id)
        if due_at:
            fields["due_at"] = due_at
        return Transition(
            message.task_id,
            message.task_name,
            TaskState.PENDING,
            "create",
            fields,
            dispatch=dispatch_of(message.labels),
        )

    # Reading ----------------------------------------------------------------------------
    async def get(self, task_id: str) -> TaskRecord | None:
        raw: Any = await self.redis.hgetall(self.layout.record_key(task_id))
        return TaskRecord.from_hash(raw) if raw else None

    async def payload(self, task_id: str) -> bytes | None:
        """The whole dispatched message, if it was small enough to keep."""
        key = self.layout.record_key(task_id)
        raw: Any = await self.redis.hget(key, "payload")
        return base64.b64decode(raw) if raw else None

    async def get_many(self, task_ids: Sequence[str]) -> list[TaskRecord | None]:
        layout = self.layout
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(layout.record_key(task_id))
            raws = await pipe.execute()
        return [TaskRecord.from_hash(raw) if raw else None for raw in raws]

    async def page(
        self,
        state: TaskState | None = None,
        task_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        where: RecordFilter | None = None,
    ) -> Page:
        """Newest first (`listing.py`); `where` adds filters beyond state and task name."""
        where = where or RecordFilter()
        if state is not None or task_name is not None:
            where = replace(
                where, state=state or where.state, task_name=task_name or where.task_name
            )
        index = where.index(self.layout)
        return await listing.page(
            self.redis,
            index,
            self.get_many,
            self.layout.record_key(""),
            where,
            limit=limit,
            cursor=cursor,
        )

    async def counts(self) -> dict[TaskState, int]:
        """Tasks per state, from the indexes (expired records are trimmed first)."""
        layout = self.layout
        trim = int((time.time() - self._settings().result_ttl_s) * 1_000_000)
        async with self.redis.pipeline(transaction=False) as pipe:
            for state in TaskState:
                pipe.zremrangebyscore(layout.index_key("state", state.value), "-inf", f"({trim}")
                pipe.zcard(layout.index_key("state", state.value))
            results = await pipe.execute()
        return {state: int(results[i * 2 + 1]) for i, state in enumerate(TaskState)}

    async def ids_in(self, states: Iterable[TaskState], limit: int = 10_000) -> list[str]:
        ids: list[str] = []
        for state in states:
            members: Any = await self.redis.zrevrange(
                self.layout.index_key("state", state.value), 0, limit - 1
            )
            ids.extend(m.decode() for m in members)
        return ids

    async def delete(self, record: TaskRecord) -> None:
        layout = self.layout
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(
                layout.record_key(record.task_id),
                layout.result_key(record.task_id),
                layout.attempts_key(record.task_id),
            )
            pipe.zrem(layout.index_key("all"), record.task_id)
            pipe.zrem(layout.index_key("name", record.task_name), record.task_id)
            pipe.zrem(layout.index_key("state", record.state.value), record.task_id)
            await pipe.execute()
