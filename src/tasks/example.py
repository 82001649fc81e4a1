"""Example tasks: what `POST /process` dispatches, and a few to try the service with."""

from __future__ import annotations

import asyncio
from typing import Any

from taskiq import TaskiqDepends

from src.tasks.broker import Progress, register_task


@register_task(api=True)
async def example_task(data: dict[str, Any]) -> dict[str, Any]:
    """Summarise a JSON object: the shape of a typical short task."""
    await asyncio.sleep(0)
    return {"keys": sorted(data), "size": len(data), "echo": data}


@register_task(task_name="add", api=True)
async def add(a: float, b: float) -> float:
    return a + b


@register_task(api=True)
async def sleep_task(seconds: float, progress: Progress = TaskiqDepends()) -> float:
    """Sleep in steps, reporting progress: for trying long tasks, live updates and cancel."""
    steps = max(1, min(100, int(seconds * 4)))
    for step in range(steps):
        await asyncio.sleep(seconds / steps)
        await progress.update(current=step + 1, total=steps, stage="sleeping")
    return seconds


@register_task(api=True)
async def fail_task(message: str = "this task always fails") -> None:
    """Raise, so the failure path can be seen end to end."""
    raise RuntimeError(message)
