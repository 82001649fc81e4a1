"""Tasks the test suite dispatches to real worker processes."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from taskiq import Context, TaskiqDepends

from src.tasks.broker import Progress, artifacts, broker, register_task


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


# Lifecycle and API ---------------------------------------------------------------------------
@register_task(api=True)
async def typed(name: str, count: int = 1, tags: list[str] | None = None) -> dict[str, Any]:
    """Arguments with types, for validation against the signature."""
    return {"name": name, "count": count, "tags": tags or []}


@register_task(api=True)
async def stepper(steps: int, progress: Progress = TaskiqDepends()) -> int:
    """Reports progress at every step."""
    for step in range(steps):
        await progress.update(current=step + 1, total=steps, stage="step", message=f"{step + 1}")
    return steps


@register_task(api=True)
async def gated(key: str, progress: Progress = TaskiqDepends()) -> str:
    """Reports one step, then waits until the test opens its gate (a Redis key)."""
    redis = await _redis()
    await redis.incr(f"test-count:{key}")
    await progress.update(current=0, total=1, stage="waiting")
    while not await redis.exists(f"test-gate:{key}"):
        await asyncio.sleep(0.02)
    await progress.update(current=1, total=1, stage="done")
    return key


@register_task(api=True)
async def hang(key: str) -> str:
    """Counts its start and runs until it is cancelled (or for an hour)."""
    redis = await _redis()
    await redis.incr(f"test-count:{key}")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await redis.incr(f"test-cancelled:{key}")
        raise
    return key


@register_task(api=True)
async def fails_first(key: str) -> str:
    """Fails on its first run only (not retried: it is dead-lettered), then succeeds."""
    redis = await _redis()
    if int(await redis.incr(f"test-count:{key}")) == 1:
        raise RuntimeError("first run fails")
    return key


@register_task()
async def internal_only() -> None:
    """Registered without `api=True`: the API must not run it."""


# Scheduling and routing ----------------------------------------------------------------------
@register_task(api=True)
async def tick(key: str, context: Context = TaskiqDepends()) -> float:
    """Counts runs per scheduled tick: any tick run twice shows as a count of 2."""
    scheduled_for = float(context.message.labels.get("scheduled_for", 0))
    redis = await _redis()
    await redis.hincrby(f"test-ticks:{key}", f"{scheduled_for:.3f}", 1)
    return scheduled_for


@register_task()
async def when(key: str) -> float:
    """Records when it started."""
    now = time.time()
    await (await _redis()).set(f"test-when:{key}", now)
    return now


@register_task(queue_name="email")
async def send_email(key: str) -> str:
    await (await _redis()).incr(f"test-count:{key}")
    return key


@register_task(rate_limit="4/s")
async def rate_limited(key: str, context: Context = TaskiqDepends()) -> int:
    """Counts its starts per rate window (the window its start was counted in)."""
    window = int(context.message.labels["rate_window"])
    await (await _redis()).hincrby(f"test-windows:{key}", str(window), 1)
    return window


_MAX_SCRIPT = (
    "if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or 0) then "
    "redis.call('SET', KEYS[1], ARGV[1]) end"
)


@register_task(concurrency=2, limit_key="group")
async def one_group_at_a_time(key: str, group: str) -> None:
    """Tracks how many runs of its group overlap; the most ever seen is kept."""
    redis = await _redis()
    running = int(await redis.incr(f"test-running:{key}:{group}"))
    await redis.eval(_MAX_SCRIPT, 1, f"test-max:{key}:{group}", running)
    await asyncio.sleep(0.2)
    await redis.decr(f"test-running:{key}:{group}")
    await redis.incr(f"test-count:{key}")


@register_task()
async def ordered(key: str, tag: str) -> None:
    """Notes the order tasks start in."""
    await (await _redis()).rpush(f"test-order:{key}", tag)
    await asyncio.sleep(0.05)


@register_task()
async def refuse(blob: str) -> None:
    """Fails with its (possibly huge) argument in the error message."""
    raise ValueError(blob)


@register_task()
async def file_gated(started: str, gate: str) -> str:
    """Marks its start in a file, then runs until the gate file exists: a test can act while it
    runs without going through Redis."""
    from pathlib import Path

    Path(started).touch()
    while not Path(gate).exists():
        await asyncio.sleep(0.02)
    return "through"


@register_task()
async def big_result(size: int) -> str:
    return "x" * size


@register_task(api=True)
async def counted(key: str) -> int:
    """Counts its runs: a task dispatched twice but run once shows a count of 1."""
    return int(await (await _redis()).incr(f"test-count:{key}"))


# Workflows -----------------------------------------------------------------------------------
@register_task()
async def add(x: float, y: float) -> float:
    return x + y


@register_task()
async def explode(value: Any, message: str = "boom") -> None:
    raise ValueError(message)


@register_task()
async def tally(values: list[Any], key: str) -> list[Any]:
    """A chord callback that counts its runs, so a second run shows."""
    await (await _redis()).incr(f"test-count:{key}")
    return values


@register_task()
async def gated_value(value: Any, started: str, gate: str) -> Any:
    """Marks its start in a file, returns `value` once the gate file exists."""
    from pathlib import Path

    Path(started).touch()
    while not Path(gate).exists():
        await asyncio.sleep(0.02)
    return value


@register_task()
async def record_order(value: Any, key: str, tag: str) -> str:
    """Appends `tag` to a list, so a test sees the order steps ran in."""
    await (await _redis()).rpush(f"test-order:{key}", tag)
    return tag


def is_big(value: Any) -> bool:
    """A workflow condition."""
    return isinstance(value, int | float) and value > 10


# Artifacts -----------------------------------------------------------------------------------
def pattern(size: int, block_size: int = 1 << 20) -> Iterator[bytes]:
    """`size` bytes of a fixed pattern, a block at a time: a test can check a large file
    without holding it."""
    block = bytes(range(256)) * (block_size // 256)
    left = size
    while left > 0:
        piece = block[: min(left, len(block))]
        left -= len(piece)
        yield piece


@register_task()
async def make_artifact(name: str, size: int, content_type: str) -> int:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in pattern(size):
            yield piece

    return (await artifacts.put(name, chunks(), content_type=content_type)).size


@register_task()
async def small_artifacts() -> list[str]:
    await artifacts.put("report.csv", b"a,b\n1,2\n", content_type="text/csv")
    await artifacts.put("empty.txt", b"", content_type="text/plain")
    return ["report.csv", "empty.txt"]


_held: list[bytearray] = []


@register_task()
async def hog(mb: int) -> int:
    """Holds `mb` MiB (touched, so resident) for the rest of the process's life."""
    _held.append(bytearray(b"x" * (mb << 20)))
    return len(_held)


@register_task()
async def loaded(packages: list[str]) -> list[str]:
    """Which of these top-level packages the worker process has imported."""
    return sorted(p for p in packages if p in sys.modules)


@register_task()
async def frozen_objects() -> int:
    """How many objects the worker process moved out of the garbage collector's sight."""
    return gc.get_freeze_count()
