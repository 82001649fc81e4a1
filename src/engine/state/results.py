"""Task results in Redis as JSON, with an expiry; readable by `wait_result` from any process.

On a worker, a result is stored by the same script call that writes the record's final state
(see `transitions.py`), so the two always agree.
"""

from __future__ import annotations

import logging
import time
import traceback as tb
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson
from pydantic_core import PydanticSerializationError
from redis.asyncio import Redis
from taskiq.abc.result_backend import AsyncResultBackend
from taskiq.result import TaskiqResult

from src.engine.core.errors import (
    ResultMissingError,
    ResultNotSerialisableError,
    ResultTooLargeError,
    TaskCancelledError,
)
from src.engine.core.layout import Layout
from src.engine.core.states import EVENT_STATUS, TaskState
from src.engine.state.events import EventBus, EventError, event_body, outcome_fields
from src.engine.state.transitions import Transition, TransitionWriter

if TYPE_CHECKING:
    from src.engine.worker.delivery import Delivery

logger = logging.getLogger("taskjet.results")

_ReturnType = TypeVar("_ReturnType")


class ResultLimits(Protocol):
    @property
    def result_ttl_s(self) -> int: ...
    @property
    def result_max_bytes(self) -> int: ...
    @property
    def event_result_max_bytes(self) -> int: ...


# Which delivery (if any) the running code belongs to; set by the worker.
CurrentDelivery = Callable[[], "Delivery | None"]


def storable(
    result: TaskiqResult[Any], max_bytes: int | None = None
) -> tuple[TaskiqResult[Any], bytes]:
    """The result as it will be stored, and its JSON: a return value JSON cannot hold, or one
    over `max_bytes`, becomes a clear task error instead of a result that cannot be stored."""
    error: Exception
    try:
        body = result.model_dump_json().encode()
    except PydanticSerializationError as exc:
        error = ResultNotSerialisableError(
            f"return value of type {type(result.return_value).__name__} is not "
            f"JSON-serialisable: {exc}"
        )
    else:
        if max_bytes is None or len(body) <= max_bytes:
            return result, body
        error = ResultTooLargeError(
            f"result of {len(body)} bytes is over TASKJET_RESULT_MAX_BYTES ({max_bytes}): "
            "store large outputs elsewhere and return a reference"
        )
    replacement = result.model_copy(update={"is_err": True, "return_value": None})
    replacement.error = error
    return replacement, replacement.model_dump_json().encode()


def dump_result(result: TaskiqResult[Any]) -> bytes:
    """JSON for a result (see `storable`)."""
    return storable(result)[1]


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
        *,
        redis: Callable[[], Redis],
        layout: Callable[[], Layout],
        limits: Callable[[], ResultLimits],
        writes: TransitionWriter,
        events: Callable[[], EventBus],
        current: CurrentDelivery,
        observe: Callable[[float, bool], None] = lambda run_s, failed: None,
    ) -> None:
        self._redis = redis
        self._layout = layout
        self._limits = limits
        self._writes = writes
        self._events = events
        self._current = current
        self._observe = observe  # this worker's own counts (`worker/vitals.py`)

    @property
    def redis(self) -> Redis:
        return self._redis()

    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        """Store the result and the record's final state in one round trip, then announce it.

        A failure that will be retried stores no result (waiters see only the final outcome),
        only the RETRYING state; a run handed back at shutdown stores nothing.
        """
        delivery = self._current()
        if delivery is None:
            await self.redis.set(
                self._layout().result_key(task_id),
                storable(result, self._limits().result_max_bytes)[1],
                ex=self._limits().result_ttl_s,
            )
            return
        if delivery.settled:
            return
        result, body = storable(result, self._limits().result_max_bytes)
        state, fields = outcome(delivery, result)
        retrying = state is TaskState.RETRYING
        self._observe(result.execution_time, state is not TaskState.SUCCESS)
        transition = Transition(
            task_id,
            delivery.message.task_name,
            state,
            "advance" if retrying else "final",
            fields,
            dispatch=delivery.labels.dispatch,
            attempt=delivery.attempt,
            result=None if retrying else body,
            labels=delivery.labels,
        )
        try:
            written = await self._writes.submit(transition)  # with the others ending now
        except Exception:
            delivery.save_failed = True
            raise
        if not written.applied:
            logger.info(
                "task %s: outcome of attempt %d not recorded (%s; record is %s)",
                task_id,
                delivery.attempt,
                written.code,
                written.before,
            )
            return
        error = fields.get("error_message")
        status = EVENT_STATUS[state]
        ending: dict[str, Any] = {}
        if not retrying:
            kind = fields.get("error_type")
            failure = EventError(type=str(kind), message=str(error or "")) if kind else None
            limit = self._limits().event_result_max_bytes
            ending = outcome_fields(status, body, failure, limit)
        message = str(error) if error is not None else None
        event = event_body(task_id, status, message=message, **ending)
        await self._events().publish_body(event, delivery.labels.client_id)

    async def is_result_ready(self, task_id: str) -> bool:
        return bool(await self.redis.exists(self._layout().result_key(task_id)))

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[_ReturnType]:
        raw = await self.redis.get(self._layout().result_key(task_id))
        if raw is None:
            raise ResultMissingError(task_id=task_id)
        return load_result(raw)
