"""Binds a running task to the log lines it causes (`TASKJET_LOG_FORMAT=json` only).

A taskiq middleware: `pre_execute` runs in the asyncio task that runs the message, so the
context variable it sets is seen by every line logged during that run, by the task's own code,
taskiq's receiver and the engine alike, and by no other task.
"""

from __future__ import annotations

from collections.abc import Callable

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage

from src.engine.core.logs import TaskLogContext, running_task
from src.engine.worker.delivery import Delivery


class LogContextMiddleware(TaskiqMiddleware):
    """Sets the task id, name and attempt every JSON log line of a run carries."""

    def __init__(self, current: Callable[[], Delivery | None]) -> None:
        super().__init__()
        self._current = current

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        delivery = self._current()
        attempt = delivery.attempt if delivery is not None else 1
        running_task.set(TaskLogContext(message.task_id, message.task_name, attempt))
        return message
