"""The benchmark's tasks on taskjet's own broker (`src.tasks.broker:broker`)."""

from __future__ import annotations

from typing import Any

from bench.workloads import cpu_async, io_async, noop_async
from src.tasks.broker import register_task

noop = register_task(task_name="bench.noop")(noop_async)
io = register_task(task_name="bench.io")(io_async)
cpu = register_task(task_name="bench.cpu")(cpu_async)

TASKS: dict[str, Any] = {"noop": noop, "io": io, "cpu": cpu}
