"""Task records in Redis: one hash per task, plus sorted-set indexes for listing and counting.

    <prefix>:task:<id>                the record (a hash), expiring with the result
    <prefix>:idx:all                  every task id, scored by queue time (µs)
    <prefix>:idx:state:<STATE>        ids in that state
    <prefix>:idx:name:<task name>     ids of that task

Every write goes through one Lua script, called once per round trip with all its transitions,
that moves ids between state indexes atomically and refuses to move a finished task back (a late
`STARTED` never hides a `SUCCESS`). Writes are coalesced: whatever records, results and
progress updates are written in the same event-loop turn share one round trip.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from asyncio import Future
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError
from taskiq.message import TaskiqMessage

from src.tasks.layout import Layout
from src.tasks.states import TaskState

if TYPE_CHECKING:
    from src.config import Settings

# create: a dispatch; sets the state only on a new record. start: a worker starting it; not over
# CANCELLED. advance: progress, retrying, cancel, hand-back; never over a final state. force: the
# final outcome. reset: dispatched again; clears the previous run's outcome.
Mode = Literal["create", "start", "advance", "force", "reset"]
Redactor = Callable[[str, list[Any], dict[str, Any]], tuple[list[Any], dict[str, Any]]]

SENSITIVE_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential")
REDACTED = "***"

_TRANSITIONS = """
local idx, keyp, ttl, now, trim = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local terminal = {SUCCESS=true, FAILURE=true, CANCELLED=true, DEAD=true}
local out = {}
for n, t in ipairs(cjson.decode(ARGV[6])) do
  local id, name, new, mode, clear, fields = t[1], t[2], t[3], t[4], t[5], t[6]
  local key = keyp .. id
  local old = redis.call('HGET', key, 'state')
  out[n] = old or ''
  local final = mode == 'advance' and terminal[old]
  if old and (final or (mode == 'start' and old == 'CANCELLED')) then
    -- a final state is never moved back; a cancelled task is never started
  elseif mode == 'create' and old then
    for i = 1, #fields, 2 do redis.call('HSETNX', key, fields[i], fields[i + 1]) end
    redis.call('EXPIRE', key, ttl)
  else
    local score = redis.call('HGET', key, 'score')
    if not score then
      score = string.format('%.0f', tonumber(now) + n - 1)  -- 1 µs apart: batch order kept
      redis.call('HSET', key, 'score', score, 'id', id, 'name', name)
      redis.call('ZADD', idx .. 'all', score, id)
      redis.call('ZADD', idx .. 'name:' .. name, score, id)
      if tonumber(trim) > 0 then
        redis.call('ZREMRANGEBYSCORE', idx .. 'all', '-inf', '(' .. trim)
        redis.call('ZREMRANGEBYSCORE', idx .. 'name:' .. name, '-inf', '(' .. trim)
      end
    end
    for _, f in ipairs(clear) do redis.call('HDEL', key, f) end
    for i = 1, #fields, 2 do redis.call('HSET', key, fields[i], fields[i + 1]) end
    if new ~= '' and new ~= old then
      if old then redis.call('ZREM', idx .. 'state:' .. old, id) end
      redis.call('HSET', key, 'state', new)
      redis.call('ZADD', idx .. 'state:' .. new, score, id)
      if tonumber(trim) > 0 then
        redis.call('ZREMRANGEBYSCORE', idx .. 'state:' .. new, '-inf', '(' .. trim)
      end
    end
    redis.call('EXPIRE', key, ttl)
  end
end
return out
"""

# What a retry or requeue clears from a record before the task runs again.
OUTCOME_FIELDS = (
    "started_at",
    "finished_at",
    "runtime_s",
    "worker",
    "error_type",
    "error_message",
    "traceback",
    "progress",
    "retry_at",
    "ack",
    "seq",
)


def default_redactor(
    _task_name: str, args: list[Any], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Hide keyword arguments whose names look like secrets."""
    return args, {
        k: (REDACTED if any(w in k.lower() for w in SENSITIVE_WORDS) else v)
        for k, v in kwargs.items()
    }


class Progress(BaseModel):
    current: float | None = None
    total: float | None = None
    message: str | None = None
    stage: str | None = None


class RecordError(BaseModel):
    type: str
    message: str
    traceback: str | None = None


class TaskRecord(BaseModel):  # type: ignore[no-redef]  # pydantic plugin: field `kwargs`
    """What taskjet knows about one task."""

    task_id: str
    task_name: str
    state: TaskState
    queue: str | None = None
    client_id: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    args_truncated: bool = Field(
        default=False, description="Arguments were too large (or not shown)."
    )
    attempts: int = 0
    worker: str | None = None
    queued_at: float | None = Field(default=None, description="Unix time.")
    due_at: float | None = Field(default=None, description="Not run before this Unix time.")
    started_at: float | None = None
    finished_at: float | None = None
    runtime_s: float | None = None
    retry_at: float | None = None
    error: RecordError | None = None
    progress: Progress | None = None
    retryable: bool = Field(default=False, description="The whole task is kept for a retry.")

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> TaskRecord:
        h = {k.decode(): v for k, v in raw.items()}

        def text(name: str) -> str | None:
            value = h.get(name)
            return value.decode() if value is not None else None

        def number(name: str) -> float | None:
            value = h.get(name)
            return float(value) if value else None

        error = None
        if h.get("error_type"):
            error = RecordError(
                type=text("error_type") or "",
                message=text("error_message") or "",
                traceback=text("traceback"),
            )
        args_truncated = h.get("args_truncated") == b"1"
        return cls(
            task_id=text("id") or "",
            task_name=text("name") or "",
            state=TaskState(text("state") or "PENDING"),
            queue=text("queue"),
            client_id=text("client_id"),
            args=orjson.loads(h["args"]) if "args" in h and not args_truncated else None,
            kwargs=orjson.loads(h["kwargs"]) if "kwargs" in h and not args_truncated else None,
            args_truncated=args_truncated,
            attempts=int(h.get("attempts") or 0),
            worker=text("worker"),
            queued_at=number("queued_at"),
            due_at=number("due_at"),
            started_at=number("started_at"),
            finished_at=number("finished_at"),
            runtime_s=number("runtime_s"),
            retry_at=number("retry_at"),
            error=error,
            progress=Progress.model_validate_json(h["progress"]) if h.get("progress") else None,
            retryable="payload" in h,
        )


@dataclass(slots=True)
class Transition:
    """One call of the transition script."""

    task_id: str
    task_name: str
    state: TaskState | None
    mode: Mode = "advance"
    fields: dict[str, str | float | int] = field(default_factory=dict)
    clear: Sequence[str] = ()


@dataclass(slots=True)
class Page:
    records: list[TaskRecord]
    next_cursor: str | None


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
        self._sha = hashlib.sha1(_TRANSITIONS.encode()).hexdigest()  # noqa: S324  # Redis' id
        self._collecting: list[Transition] | None = None
        self._pending: list[tuple[Callable[[Pipeline], None], Future[list[Any]]]] = []
        self._flush_scheduled = False
        self.redact: Redactor = default_redactor

    @property
    def redis(self) -> Redis:
        return self._redis()

    @property
    def layout(self) -> Layout:
        return self._layout()

    async def load_script(self) -> None:
        """Load the transition script (at startup, and again if Redis lost it)."""
        self._sha = await self.redis.script_load(_TRANSITIONS)

    async def execute(
        self, build: Callable[[Pipeline], None], raise_on_error: bool = True
    ) -> list[Any]:
        """Run a pipeline `build` fills; reloads the script and runs it again if Redis
        restarted without it (every write here is safe to repeat)."""
        for attempt in (1, 2):
            async with self.redis.pipeline(transaction=False) as pipe:
                build(pipe)
                try:
                    results: list[Any] = await pipe.execute(raise_on_error=raise_on_error)
                except NoScriptError:
                    results = [NoScriptError()]
                if attempt == 1 and any(isinstance(r, NoScriptError) for r in results):
                    await self.load_script()
                    continue
                return results
        raise AssertionError("unreachable")

    # Writing ----------------------------------------------------------------------------
    def queue_transition(self, pipe: Pipeline, t: Transition) -> None:
        """Inside a `batched` builder: add a transition to this round trip's script call."""
        if self._collecting is None:
            raise RuntimeError("queue_transition() is only for builders passed to batched()")
        self._collecting.append(t)

    def _script_call(self, pipe: Pipeline, batch: list[Transition]) -> None:
        """One call of the script for every transition of the round trip."""
        settings = self._settings()
        layout = self.layout
        now_us = int(time.time() * 1_000_000)
        trim = now_us - settings.result_ttl_s * 1_000_000
        items = [
            [
                t.task_id,
                t.task_name,
                t.state.value if t.state else "",
                t.mode,
                list(t.clear),
                [str(x) for pair in t.fields.items() for x in pair],
            ]
            for t in batch
        ]
        pipe.evalsha(
            self._sha,
            0,
            layout.index_key(""),
            layout.record_key(""),
            settings.result_ttl_s,
            now_us,
            trim,
            orjson.dumps(items),
        )

    async def apply(self, transitions: Iterable[Transition]) -> list[TaskState | None]:
        """Run transitions in one round trip; returns each record's state before it."""
        batch = list(transitions)
        if not batch:
            return []

        def build(pipe: Pipeline) -> None:
            for t in batch:
                self.queue_transition(pipe, t)

        return [_state(raw) for raw in await self.batched(build)]

    async def submit(self, transition: Transition) -> TaskState | None:
        """Write soon, together with every other write submitted in the same loop iteration."""
        results = await self.batched(lambda pipe: self.queue_transition(pipe, transition))
        return _state(results[0])

    async def batched(self, build: Callable[[Pipeline], None]) -> list[Any]:
        """Run `build`'s commands in one pipeline with every other caller of this loop
        iteration (results, starts, progress of many tasks): one round trip for all."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((build, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(batch))
        task.add_done_callback(lambda _: None)

    async def _flush(
        self, batch: list[tuple[Callable[[Pipeline], None], Future[list[Any]]]]
    ) -> None:
        bounds: list[tuple[int, int, int, int]] = []
        transitions: list[Transition] = []

        def build_all(pipe: Pipeline) -> None:
            bounds.clear()
            transitions.clear()
            self._collecting = transitions
            try:
                for build, _ in batch:
                    start, t_start = len(pipe.command_stack), len(transitions)
                    build(pipe)
                    bounds.append((start, len(pipe.command_stack), t_start, len(transitions)))
            finally:
                self._collecting = None
            if transitions:
                self._script_call(pipe, transitions)

        try:
            results = await self.execute(build_all, raise_on_error=False)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        states: Any = results[-1] if transitions else []
        for (_, future), (start, stop, t_start, t_stop) in zip(batch, bounds, strict=True):
            if future.done():
                continue
            mine = list(results[start:stop])
            if t_stop > t_start:
                mine.extend(states[t_start:t_stop] if isinstance(states, list) else [states])
            failure = next((r for r in mine if isinstance(r, Exception)), None)
            if failure is not None:
                future.set_exception(failure)
            else:
                future.set_result(mine)

    def queued(
        self,
        message: TaskiqMessage,
        queue: str,
        payload: bytes,
        *,
        due_at: float | None = None,
        mode: Mode = "create",
    ) -> Transition:
        """The record of a task just dispatched (or dispatched again)."""
        settings = self._settings()
        args, kwargs = self.redact(message.task_name, list(message.args), dict(message.kwargs))
        shown = orjson.dumps(args), orjson.dumps(kwargs)
        fields: dict[str, str | float | int] = {
            "queue": queue,
            "queued_at": time.time(),
            "dispatch": int(message.labels.get("dispatch", 1)),
        }
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
            mode,
            fields,
            clear=OUTCOME_FIELDS if mode == "reset" else (),
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
    ) -> Page:
        """Newest first. The cursor names the last record seen, so new tasks never shift a page."""
        layout = self.layout
        if task_name is not None:
            index = layout.index_key("name", task_name)
        elif state is not None:
            index = layout.index_key("state", state.value)
        else:
            index = layout.index_key("all")
        after = _decode_cursor(cursor)
        records: list[TaskRecord] = []
        high = f"{after[0]}" if after else "+inf"
        offset = 0
        chunk_size = limit * 2 + 16
        stale: list[str] = []
        while len(records) < limit:
            chunk: Any = await self.redis.zrevrangebyscore(
                index, high, "-inf", start=offset, num=chunk_size, withscores=True
            )
            if not chunk:
                break
            fresh = [
                (member.decode(), int(score))
                for member, score in chunk
                if after is None or (int(score), member.decode()) < after
            ]
            if not fresh:  # a run of equal scores already seen: step over it
                offset += len(chunk)
                continue
            found = await self.get_many([task_id for task_id, _ in fresh])
            for (task_id, score), record in zip(fresh, found, strict=True):
                after = (score, task_id)
                if record is None:
                    stale.append(task_id)
                    continue
                if state is not None and record.state != state:
                    continue
                records.append(record)
                if len(records) >= limit:
                    break
            assert after is not None
            high, offset = str(after[0]), 0
            if len(chunk) < chunk_size:
                break
        if stale:
            await self.redis.zrem(index, *stale)
        more = len(records) >= limit and after is not None
        return Page(records, _encode_cursor(after) if more and after else None)

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


def _state(raw: object) -> TaskState | None:
    if isinstance(raw, bytes):
        raw = raw.decode()
    return TaskState(str(raw)) if raw else None


def _encode_cursor(after: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(f"{after[0]}:{after[1]}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, _, task_id = text.partition(":")
        return int(score), task_id
    except ValueError as exc:
        raise InvalidCursorError("invalid cursor") from exc


class InvalidCursorError(ValueError):
    """A pagination cursor that this API did not hand out."""
