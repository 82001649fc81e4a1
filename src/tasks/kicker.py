"""Sending side: labels kept as JSON, idempotent task ids, a faster `wait_result`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from copy import copy
from typing import Any, TypeAlias, TypeVar

from taskiq.decor import AsyncTaskiqDecoratedTask
from taskiq.exceptions import ResultIsReadyError, SendTaskError, TaskiqResultTimeoutError
from taskiq.kicker import AsyncKicker
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult
from taskiq.task import AsyncTaskiqTask
from typing_extensions import ParamSpec

from src.tasks.formatter import EncodeError
from src.tasks.limits import with_limits

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Labels that only make sense next to the registered function; never put on the wire.
LOCAL_LABELS = frozenset({"retry_for", "types_of_exceptions", "schedule"})
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c3f0e-2f4b-4c1e-9a57-7d1f0e8b9a10")

Call: TypeAlias = Sequence[Any] | Mapping[str, Any]

_FIRST_POLL_S = 0.002
_MAX_POLL_S = 0.2


def idempotent_task_id(task_name: str, key: str) -> str:
    """Same task and key, same id: a repeated dispatch finds the first one's result."""
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{task_name}\x00{key}").hex


class TaskHandle(AsyncTaskiqTask[_R]):
    """What `kiq` returns. Polls briefly at first, so short tasks are seen in milliseconds."""

    async def wait_result(
        self,
        check_interval: float | None = None,
        timeout: float = -1.0,
        with_logs: bool = False,
    ) -> TaskiqResult[_R]:
        deadline = time.monotonic() + timeout if timeout > 0 else None
        interval = check_interval or _FIRST_POLL_S
        while not await self._ready_or_unknown():
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskiqResultTimeoutError(timeout=timeout)
            await asyncio.sleep(interval)
            if check_interval is None:
                interval = min(interval * 2, _MAX_POLL_S)
        return await self.get_result(with_logs=with_logs)

    async def _ready_or_unknown(self) -> bool:
        """A Redis hiccup (a restart, a pool briefly exhausted) is not the caller's error:
        keep waiting until the deadline."""
        try:
            return await self.is_ready()
        except ResultIsReadyError:
            return False


class TaskjetKicker(AsyncKicker[_P, _R]):
    """taskiq's kicker, minus the lossy `str()` of label values."""

    def _prepare_message(self, *args: Any, **kwargs: Any) -> TaskiqMessage:
        labels = {k: v for k, v in self.labels.items() if k not in LOCAL_LABELS}
        task_id = self.custom_task_id
        key = labels.get("idempotency_key")
        if task_id is None and key is not None:
            task_id = idempotent_task_id(self.task_name, str(key))
        return TaskiqMessage(
            task_id=task_id or self.broker.id_generator(),
            task_name=self.task_name,
            labels=labels,
            labels_types=None,
            args=[self._prepare_arg(arg) for arg in args],
            kwargs={name: self._prepare_arg(value) for name, value in kwargs.items()},
        )

    async def kiq_many(self, calls: Iterable[Call]) -> list[TaskHandle[Any]]:
        """Dispatch many calls of this task at once: publishes are pipelined, their acks
        awaited together, and their records written in one round trip.

        Each call is a tuple of positional arguments or a dict of keyword arguments.
        """
        messages = []
        for call in calls:
            args, kwargs = ((), call) if isinstance(call, Mapping) else (tuple(call), {})
            messages.append(self.broker.formatter.dumps(self._prepare_message(*args, **kwargs)))
        kick_many = getattr(self.broker, "kick_many", None)
        if kick_many is None:
            for message in messages:
                await self.broker.kick(message)
        else:
            await kick_many(messages)
        return [
            TaskHandle(m.task_id, self.broker.result_backend, self.return_type) for m in messages
        ]

    async def kiq(self, *args: _P.args, **kwargs: _P.kwargs) -> TaskHandle[Any]:
        try:
            task = await super().kiq(*args, **kwargs)
        except SendTaskError as exc:
            if isinstance(exc.__cause__, EncodeError | ValueError):
                raise exc.__cause__ from None  # bad input: say what, not "cannot send"
            raise
        return TaskHandle(task.task_id, task.result_backend, task.return_type)


class TaskjetTask(AsyncTaskiqDecoratedTask[_P, _R]):
    """A plain taskiq task whose kicker is `TaskjetKicker` and which honours `soft_timeout`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if asyncio.iscoroutinefunction(self.original_func):
            self.original_func = with_limits(self.original_func)  # type: ignore[assignment]

    async def kiq_many(self, calls: Iterable[Call]) -> list[TaskHandle[Any]]:
        """`await task.kiq_many([(1, 2), (3, 4), {"a": 5, "b": 6}])`: see `TaskjetKicker`."""
        return await self.kicker().kiq_many(calls)

    def kicker(self) -> TaskjetKicker[_P, _R]:
        return TaskjetKicker(
            task_name=self.task_name,
            broker=self.broker,
            labels=copy(self.labels),
            return_type=self.return_type,
        )
