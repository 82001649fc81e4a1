"""The application's broker and the decorator that registers tasks on it.

    from src.tasks.broker import register_task

    @register_task()                       # named "src.tasks.example:example_task"
    async def example_task(data: dict) -> dict: ...

    @register_task(task_name="reports.build", queue_name="reports")   # extra kwargs are labels
    async def build_report(report_id: int) -> str: ...

Settings are read from the environment when the broker starts, not at import time, so the stock
`taskiq worker src.tasks.broker:broker <modules>` CLI and tests can configure it first.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from typing_extensions import ParamSpec

from src.tasks.jetstream import JetStreamBroker
from src.tasks.kicker import TaskjetTask

_P = ParamSpec("_P")
_R = TypeVar("_R")

broker = JetStreamBroker()


def register_task(
    task_name: str | None = None, **labels: Any
) -> Callable[[Callable[_P, Coroutine[Any, Any, _R]]], TaskjetTask[_P, Coroutine[Any, Any, _R]]]:
    """Register an `async def` as a taskjet task; keyword arguments become its labels."""

    def decorate(
        func: Callable[_P, Coroutine[Any, Any, _R]],
    ) -> TaskjetTask[_P, Coroutine[Any, Any, _R]]:
        return broker.task(task_name=task_name, **labels)(func)  # type: ignore[return-value]

    return decorate
