"""The class every registered task is: a plain taskiq task, sent by taskjet's kicker, whose
function honours `soft_timeout` and cancellation when a worker runs it, and which makes
workflow steps (`task.s(...)`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from copy import copy
from typing import Any, TypeVar

from taskiq.decor import AsyncTaskiqDecoratedTask
from typing_extensions import ParamSpec

from src.engine.sending.kicker import Call, TaskHandle, TaskjetKicker
from src.engine.worker.time_limits import with_limits
from src.engine.workflows.canvas import Signature, signature

_P = ParamSpec("_P")
_R = TypeVar("_R")


class TaskjetTask(AsyncTaskiqDecoratedTask[_P, _R]):
    """A plain taskiq task whose kicker is `TaskjetKicker` and which honours `soft_timeout`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if asyncio.iscoroutinefunction(self.original_func):
            self.original_func = with_limits(self.original_func)  # type: ignore[assignment]

    async def kiq_many(self, calls: Iterable[Call]) -> list[TaskHandle[Any]]:
        """`await task.kiq_many([(1, 2), (3, 4), {"a": 5, "b": 6}])`: see `TaskjetKicker`."""
        return await self.kicker().kiq_many(calls)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """This task as a workflow step: it gets the previous step's result first, then these."""
        return signature(self.broker, self.task_name, self.labels, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable step: only these arguments, whatever the previous step returned."""
        return signature(self.broker, self.task_name, self.labels, args, kwargs, immutable=True)

    def kicker(self) -> TaskjetKicker[_P, _R]:
        return TaskjetKicker(
            task_name=self.task_name,
            broker=self.broker,
            labels=copy(self.labels),
            return_type=self.return_type,
        )
