"""Tasks the test suite dispatches to real worker processes."""

from __future__ import annotations

import asyncio
import os
import time
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


async def _redis() -> Any:
    return broker.results.redis


@register_task(retry_on_error=True, max_retries=5, retry_backoff=0.2, retry_jitter="equal")
async def flaky(key: str, failures: int, context: Context = TaskiqDepends()) -> int:
    """Fails `failures` times, then succeeds; logs the time of every attempt."""
    redis = await _redis()
    await redis.rpush(f"test-times:{key}", str(time.time()))
    runs = int(await redis.incr(f"test-count:{key}"))
    if runs <= failures:
        raise ConnectionError(f"attempt {runs} failed")
    return int(context.message.labels["attempt"])


@register_task(retry_on_error=True, max_retries=2, retry_backoff=0.1)
async def always_fails(key: str) -> None:
    runs = int(await (await _redis()).incr(f"test-count:{key}"))
    raise ValueError(f"run {runs} failed as always")


@register_task(retry_on_error=True, max_retries=3, retry_for=(ConnectionError,))
async def wrong_kind_of_failure(key: str) -> None:
    await (await _redis()).incr(f"test-count:{key}")
    raise ValueError("not a connection problem: no retry")


@register_task()
async def slow(key: str, seconds: float) -> str:
    """Counts its start, sleeps, counts its finish: duplicates and losses both show."""
    redis = await _redis()
    await redis.incr(f"test-count:{key}")
    await asyncio.sleep(seconds)
    await redis.incr(f"test-done:{key}")
    return key


@register_task()
async def stubborn(key: str) -> int:
    """Hangs on its first run only, so a handed-back run shows up as a quick second one."""
    redis = await _redis()
    runs = int(await redis.incr(f"test-count:{key}"))
    if runs == 1:
        await asyncio.sleep(3600)
    return runs


@register_task()
async def polite(seconds: float) -> str:
    """Cleans up when its soft time limit cancels it."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        return "cleaned up"
    return "finished"


@register_task()
async def crash_worker(key: str) -> None:
    """Kills the worker process running it, every time: a poison task."""
    await (await _redis()).incr(f"test-count:{key}")
    os._exit(1)
