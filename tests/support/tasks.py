"""Tasks the test suite dispatches to real worker processes."""

from __future__ import annotations

import asyncio
from typing import Any

from taskiq import Context, TaskiqDepends

from src.tasks.broker import broker, register_task


class PaymentDeclinedError(Exception):
    """A domain error raised by a task, to see its type travel back."""


@register_task()
async def echo(value: Any) -> Any:
    return value


@register_task(task_name="custom_name")
async def named() -> str:
    return "named"


@register_task(colour="blue", sizes=[1, 2], meta={"team": "billing"})
async def labelled(context: Context = TaskiqDepends()) -> dict[str, Any]:
    """Returns the labels it was delivered with, to prove they arrive as sent."""
    return dict(context.message.labels)


@register_task()
async def decline(amount: int) -> None:
    raise PaymentDeclinedError(f"card declined for {amount}")


@register_task()
async def count(key: str) -> int:
    """Counts its own executions in Redis, so tests can see duplicates."""
    return int(await broker.results.redis.incr(f"test-count:{key}"))


@register_task()
async def unserialisable_result() -> object:
    return object()


@register_task()
async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds
