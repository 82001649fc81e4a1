"""Tasks of a retry storm: many failing together and retrying soon, while new work arrives.
Each run appends `R` (a failing run) or `N` (a new task) to the Redis list `order`, so a test
reads the order in which the worker started them."""

from __future__ import annotations

import asyncio

from src.tasks.broker import broker, register_task


@register_task(
    retry_on_error=True,
    max_retries=1000,
    retry_backoff=0.05,
    retry_backoff_max=0.2,
    retry_jitter="none",
)
async def outage(order: str) -> None:
    """Calls a service that is down: fails after a short wait, and is retried soon."""
    await broker.results.redis.rpush(order, "R")
    await asyncio.sleep(0.01)
    raise ConnectionError("the service is down")


# How long a new task works: 200 of them on 10 slots last at least 2 s, longer than a held-back
# retry waits (`retry_share.DEFER_S` plus its backoff), so retries come back while new work remains.
FRESH_WORK_S = 0.1


@register_task()
async def fresh(order: str, i: int) -> int:
    await broker.results.redis.rpush(order, "N")
    await asyncio.sleep(FRESH_WORK_S)
    return i
