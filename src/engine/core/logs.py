"""Log lines a machine can read (`TASKJET_LOG_FORMAT=json`): one JSON object per line.

Each line has `time` (UTC, ISO 8601), `level`, `logger`, `message`, and `exception` when one
was logged; a line logged while a task runs also has its `task_id`, `task_name` and `attempt`,
from a context variable the worker sets for each run (so concurrent tasks never mix them up).
Text stays the default: in text mode nothing here runs.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson


@dataclass(frozen=True, slots=True)
class TaskLogContext:
    task_id: str
    task_name: str
    attempt: int


# Set for the run of a task, in the asyncio task that runs it.
running_task: contextvars.ContextVar[TaskLogContext | None] = contextvars.ContextVar(
    "taskjet_running_task", default=None
)
# Further fields for every line (the tracing module adds trace and span ids).
_extra_fields: list[Callable[[], dict[str, str]]] = []


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never raises, whatever was passed as arguments."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        task = running_task.get()
        if task is not None:
            entry["task_id"] = task.task_id
            entry["task_name"] = task.task_name
            entry["attempt"] = task.attempt
        for fields in _extra_fields:
            entry.update(fields())
        return orjson.dumps(entry, default=str).decode()


def add_fields(fields: Callable[[], dict[str, str]]) -> None:
    """Put what `fields()` returns on every JSON line from now on."""
    if fields not in _extra_fields:
        _extra_fields.append(fields)


def use_json(level: str) -> None:
    """Every handler already installed (taskiq's worker CLI, uvicorn) writes JSON from now on;
    the root logger gets a handler on stderr if it has none, so taskjet's own lines show."""
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        root.addHandler(handler)
        root.setLevel(level)
    loggers = [root, *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            handler.setFormatter(formatter)
