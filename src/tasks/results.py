"""Task results in Redis as JSON, with an expiry; readable by `wait_result` from any process."""

from __future__ import annotations

import logging
import time
import traceback as tb
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from pydantic_core import PydanticSerializationError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq.abc.result_backend import AsyncResultBackend
from taskiq.exceptions import ResultGetError
from taskiq.result import TaskiqResult

from src.config import Settings
from src.tasks.delivery import Delivery, current_delivery
from src.tasks.errors import TaskCancelledError
from src.tasks.events import EventBus, TaskEvent
from src.tasks.layout import Layout
from src.tasks.records import TaskRecords, Transition
from src.tasks.states import TaskState

logger = logging.getLogger("taskjet.results")

_ReturnType = TypeVar("_ReturnType")


class ResultNotSerialisableError(TypeError):
    """A task returned a value that cannot be stored as JSON."""


class ResultMissingError(ResultGetError):
    """No result is stored for this task id (not finished, expired, or unknown)."""

    __template__ = "No result stored for task {task_id}"
    task_id: str


def redis_client(settings: Settings) -> Redis:
    """A Redis client that fails fast, so a Redis outage shows up as an error, not a hang."""
    # A blocking pool: a burst of callers waits for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        # A pooled connection closed by a Redis restart fails once; retry on a fresh one.
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis.from_pool(pool)


def dump_result(result: TaskiqResult[Any]) -> bytes:
    """JSON for a result; a return value JSON cannot hold becomes a clear task error."""
    try:
        return result.model_dump_json().encode()
    except PydanticSerializationError as exc:
        error = ResultNotSerialisableError(
            f"return value of type {type(result.return_value).__name__} is not "
            f"JSON-serialisable: {exc}"
        )
        replacement = result.model_copy(update={"is_err": True, "return_value": None})
        replacement.error = error
        return replacement.model_dump_json().encode()


def outcome(
    delivery: Delivery, result: TaskiqResult[Any]
) -> tuple[TaskState, dict[str, str | float | int]]:
    """The record state a finished run leads to, and the fields that describe it."""
    fields: dict[str, str | float | int] = {
        "finished_at": time.time(),
        "runtime_s": round(result.execution_time, 6),
    }
    error = result.error
    if delivery.retry_in_s is not None:
        state = TaskState.RETRYING
        fields["retry_at"] = time.time() + delivery.retry_in_s
    elif delivery.dead is not None:
        state = TaskState.DEAD
    elif result.is_err and isinstance(error, TaskCancelledError):
        state = TaskState.CANCELLED
    elif result.is_err:
        state = TaskState.FAILURE
    else:
        return TaskState.SUCCESS, fields
    if error is not None:
        fields["error_type"] = type(error).__name__
        fields["error_message"] = str(error)[:2000]
        trace = delivery.dead.traceback if delivery.dead else None
        fields["traceback"] = (trace or "".join(tb.format_exception(error)))[-8000:]
    return state, fields


def load_result(raw: bytes | str) -> TaskiqResult[Any]:
    return TaskiqResult[Any].model_validate(orjson.loads(raw))


class RedisResultBackend(AsyncResultBackend[_ReturnType]):
    """Stores each result under its own key with the configured expiry.

    A failed save is recorded on the running delivery, so the message is handed back to
    JetStream instead of being acked with its result lost.
    """

    def __init__(
        self,
        settings: Callable[[], Settings],
        records: TaskRecords | None = None,
        events: Callable[[], EventBus] | None = None,
    ) -> None:
        self._settings = settings
        self._redis: Redis | None = None
        self._layout: Layout | None = None
        self.records = records
        self.events = events

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("the result backend is not started: call broker.startup() first")
        return self._redis

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            raise RuntimeError("the result backend is not started: call broker.startup() first")
        return self._layout

    async def startup(self) -> None:
        settings = self._settings()
        self._layout = Layout.from_settings(settings)
        self._ttl_s = settings.result_ttl_s
        self._redis = redis_client(settings)

    async def shutdown(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        """Store the result and the record's final state in one round trip, then announce it.

        A failure that will be retried stores no result (waiters see only the final outcome),
        only the RETRYING state; a run handed back at shutdown stores nothing.
        """
        delivery = current_delivery.get()
        if delivery is None or self.records is None:
            await self.redis.set(
                self.layout.result_key(task_id), dump_result(result), ex=self._ttl_s
            )
            return
        if delivery.settled:
            return
        state, fields = outcome(delivery, result)
        message = delivery.message
        transition = Transition(
            task_id,
            message.task_name,
            state,
            "advance" if state is TaskState.RETRYING else "force",
            fields,
        )
        records = self.records

        def build(pipe: Pipeline) -> None:
            if state is not TaskState.RETRYING:
                pipe.set(self.layout.result_key(task_id), dump_result(result), ex=self._ttl_s)
            records.queue_transition(pipe, transition)

        try:
            await records.batched(build)  # one round trip with the other tasks ending now
        except Exception:
            delivery.save_failed = True
            raise
        if self.events is not None:
            error = fields.get("error_message")
            await self.events().publish(
                TaskEvent.of(task_id, state, str(error) if error is not None else None),
                message.labels.get("client_id"),
            )

    async def is_result_ready(self, task_id: str) -> bool:
        return bool(await self.redis.exists(self.layout.result_key(task_id)))

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[_ReturnType]:
        raw = await self.redis.get(self.layout.result_key(task_id))
        if raw is None:
            raise ResultMissingError(task_id=task_id)
        return load_result(raw)
