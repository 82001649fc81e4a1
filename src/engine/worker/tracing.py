"""The `run <task>` span of each delivery, in the trace of the request that sent the task.

A taskiq middleware, added only while tracing is on (`src.engine.telemetry`): `pre_execute`
starts the span as a child of the context the message carries and makes it current for the
run, so the Redis calls of the run, tasks it sends and its log lines belong to it; the span
ends when the delivery is settled (ack, nak or term), with the outcome the worker decided.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from src.engine.core import tracing
from src.engine.core.errors import TaskCancelledError
from src.engine.worker.delivery import Delivery

if TYPE_CHECKING:
    from opentelemetry.trace import Span


def outcome(delivery: Delivery, failed: bool, finished: bool = True) -> str:
    """What became of a run, in the words of taskjet's metrics (and `handed back` for a run
    its worker gave up before it finished: a shutdown's grace period ran out)."""
    if not finished:
        return "handed back"
    if delivery.dead is not None:
        return "dead"
    if delivery.retry_in_s is not None:
        return "retried"
    if delivery.cancel_requested:
        return "cancelled"
    if delivery.save_failed:
        return "redelivered"
    return "failed" if failed else "succeeded"


class _Run:
    """The span of one run, whether the task's function raised, and whether it finished."""

    __slots__ = ("failed", "finished", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.failed = False
        self.finished = False

    def settled(self, delivery: Delivery) -> None:
        result = outcome(delivery, self.failed, self.finished)
        self.span.set_attribute("taskjet.task.outcome", result)
        if result in {"failed", "dead"}:
            from opentelemetry.trace import StatusCode

            self.span.set_status(StatusCode.ERROR)
        self.span.end()


# The run of the message this asyncio task runs (taskiq runs each message in a task of its own).
_current_run: contextvars.ContextVar[_Run | None] = contextvars.ContextVar(
    "taskjet_traced_run", default=None
)


class TracingMiddleware(TaskiqMiddleware):
    """Spans for runs; see the module docstring."""

    def __init__(self, current: Callable[[], Delivery | None]) -> None:
        super().__init__()
        self._current = current

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        delivery = self._current()
        attributes: dict[str, Any] = {
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "taskjet.task.id": message.task_id,
            "taskjet.task.name": message.task_name,
        }
        if delivery is not None:
            attributes["taskjet.task.queue"] = delivery.queue
            attributes["taskjet.task.attempt"] = delivery.attempt
            attributes["messaging.destination.name"] = delivery.msg.subject
        span = tracing.start_run(message.task_name, tracing.extract(message.labels), attributes)
        if span is not None:
            run = _Run(span)
            _current_run.set(run)
            if delivery is not None:
                delivery.on_settle.append(run.settled)
        return message

    def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        run = _current_run.get()
        if run is not None and not isinstance(exception, TaskCancelledError):
            run.failed = True
            run.span.record_exception(exception)

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        run = _current_run.get()
        if run is None:
            return
        run.finished = True
        if self._current() is None:  # not a JetStream delivery: ends here
            run.span.set_attribute("taskjet.task.outcome", "failed" if run.failed else "succeeded")
            run.span.end()
