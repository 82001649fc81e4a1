"""Example tasks: what `POST /process` dispatches, and a few to try the service with."""

from __future__ import annotations

import asyncio
from typing import Any

from src.tasks.broker import register_task


@register_task()
async def example_task(data: dict[str, Any]) -> dict[str, Any]:
    """Summarise a JSON object: the shape of a typical short task."""
    await asyncio.sleep(0)
    return {"keys": sorted(data), "size": len(data), "echo": data}


@register_task(task_name="add")
async def add(a: float, b: float) -> float:
    return a + b


@register_task()
async def sleep_task(seconds: float) -> float:
    """Sleep, then return how long: for trying long tasks, shutdown and cancellation."""
    await asyncio.sleep(seconds)
    return seconds


@register_task()
async def fail_task(message: str = "this task always fails") -> None:
    """Raise, so the failure path can be seen end to end."""
    raise RuntimeError(message)
