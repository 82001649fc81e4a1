"""JSON log lines: the fields, the running task's id, exceptions, and values JSON cannot hold."""

from __future__ import annotations

import contextvars
import logging
import sys

import orjson

from src.engine.core.logs import JsonFormatter, TaskLogContext, running_task


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    return logging.LogRecord(
        "taskjet.test", logging.ERROR, __file__, 1, message, args, sys.exc_info() if exc else None
    )


def test_a_line_outside_a_task() -> None:
    line = orjson.loads(JsonFormatter().format(_record("hello %s", "there")))
    assert line.keys() == {"time", "level", "logger", "message"}
    assert line["message"] == "hello there"
    assert line["level"] == "ERROR"
    assert line["logger"] == "taskjet.test"
    assert line["time"].endswith("+00:00")


def test_a_line_inside_a_task_carries_it() -> None:
    def inside() -> str:
        running_task.set(TaskLogContext("abc", "tasks:send", 3))
        return JsonFormatter().format(_record("working"))

    line = orjson.loads(contextvars.copy_context().run(inside))
    assert (line["task_id"], line["task_name"], line["attempt"]) == ("abc", "tasks:send", 3)
    assert running_task.get() is None


def test_an_exception_and_odd_arguments_still_make_one_line() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        text = JsonFormatter().format(_record("odd %s", object(), exc=True))
    assert "\n" not in text
    line = orjson.loads(text)
    assert "KeyError: 'missing'" in line["exception"]
    assert line["message"].startswith("odd <object object")
