"""The tasks of `bench/retry_storm.py`: a call to a service that is down, and new work."""

from __future__ import annotations

import asyncio
import time

from src.tasks.broker import register_task


@register_task(
    task_name="bench.outage",
    retry_on_error=True,
    max_retries=30,
    retry_backoff=0.05,
    retry_backoff_max=0.5,
    retry_jitter="full",
)
async def outage() -> None:
    await asyncio.sleep(0.01)
    raise ConnectionError("the service is down")


@register_task(task_name="bench.fresh")
async def fresh() -> float:
    """When it started (epoch seconds): the sender subtracts when it sent it."""
    return time.time()
