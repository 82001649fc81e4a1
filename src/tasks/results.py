"""Task results in Redis as JSON, with an expiry; readable by `wait_result` from any process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from pydantic_core import PydanticSerializationError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq.abc.result_backend import AsyncResultBackend
from taskiq.exceptions import ResultGetError
from taskiq.result import TaskiqResult

from src.config import Settings
from src.tasks.delivery import current_delivery
from src.tasks.layout import Layout

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


def load_result(raw: bytes | str) -> TaskiqResult[Any]:
    return TaskiqResult[Any].model_validate(orjson.loads(raw))


class RedisResultBackend(AsyncResultBackend[_ReturnType]):
    """Stores each result under its own key with the configured expiry.

    A failed save is recorded on the running delivery, so the message is handed back to
    JetStream instead of being acked with its result lost.
    """

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._redis: Redis | None = None
        self._layout: Layout | None = None

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
        delivery = current_delivery.get()
        if delivery is not None and (delivery.retry_in_s is not None or delivery.settled):
            return  # not the final outcome: the task runs again (retry, or handed back)
        try:
            await self.redis.set(
                self.layout.result_key(task_id), dump_result(result), ex=self._ttl_s
            )
        except Exception:
            if delivery is not None:
                delivery.save_failed = True
            raise

    async def is_result_ready(self, task_id: str) -> bool:
        return bool(await self.redis.exists(self.layout.result_key(task_id)))

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[_ReturnType]:
        raw = await self.redis.get(self.layout.result_key(task_id))
        if raw is None:
            raise ResultMissingError(task_id=task_id)
        return load_result(raw)
