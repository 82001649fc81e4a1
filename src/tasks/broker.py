"""The application's broker, the decorator that registers tasks on it, and what task code uses.

    from src.tasks.broker import Progress, artifacts, cancel, circuit_breaker, register_task
    from src.tasks.broker import chain, chord, dag, group       # workflows

    @register_task()                       # named "src.tasks.example:example_task"
    async def example_task(data: dict) -> dict: ...

    @register_task(task_name="reports.build", queue_name="reports")   # extra kwargs are labels
    async def build_report(report_id: int) -> str: ...

    model_api = circuit_breaker("model-api", failure_threshold=5, window_s=60, open_s=30)

    @register_task(retry_on_error=True)   # an open breaker is retried when it lets a trial through
    async def summarise(text: str) -> str:
        async with model_api:
            ...

Settings are read from the environment when the broker starts, not at import time, so the stock
`taskiq worker src.tasks.broker:broker <modules>` CLI and tests can configure it first.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from typing_extensions import ParamSpec, Unpack

from src.engine.broker import JetStreamBroker
from src.engine.core.errors import CircuitOpenError
from src.engine.operations.control import cancel
from src.engine.sending.kicker import TaskHandle
from src.engine.task import TaskjetTask
from src.engine.worker.artifacts import TaskArtifacts
from src.engine.worker.circuit import BreakerOptions, CircuitBreaker
from src.engine.worker.progress import Progress
from src.engine.worker.receiver import TaskjetReceiver
from src.engine.workflows.canvas import Signature, chain, chord, dag, group
from src.engine.workflows.handle import WorkflowHandle
from src.engine.workflows.record import WorkflowRecord, WorkflowResult

_P = ParamSpec("_P")
_R = TypeVar("_R")

broker = JetStreamBroker()
artifacts = TaskArtifacts(broker.artifacts)


def register_task(
    task_name: str | None = None, **labels: Any
) -> Callable[[Callable[_P, Coroutine[Any, Any, _R]]], TaskjetTask[_P, Coroutine[Any, Any, _R]]]:
    """Register an `async def` as a taskjet task; keyword arguments become its labels."""

    def decorate(
        func: Callable[_P, Coroutine[Any, Any, _R]],
    ) -> TaskjetTask[_P, Coroutine[Any, Any, _R]]:
        return broker.task(task_name=task_name, **labels)(func)  # type: ignore[return-value]

    return decorate


def circuit_breaker(name: str, **options: Unpack[BreakerOptions]) -> CircuitBreaker:
    """A circuit breaker shared by every worker (state in Redis): a decorator or `async with`.
    It opens after `failure_threshold` failures (default 5) within `window_s` (60), fails calls
    fast with `CircuitOpenError` for `open_s` (30), then lets one trial call decide."""
    return CircuitBreaker(name, lambda: broker.breakers, **options)


__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "JetStreamBroker",
    "Progress",
    "Signature",
    "TaskHandle",
    "TaskjetReceiver",
    "TaskjetTask",
    "WorkflowHandle",
    "WorkflowRecord",
    "WorkflowResult",
    "artifacts",
    "broker",
    "cancel",
    "chain",
    "chord",
    "circuit_breaker",
    "dag",
    "group",
    "register_task",
]
