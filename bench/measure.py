"""Timing: when results become readable in Redis, and enqueue-to-result latency.

Every system here stores a task's result under one Redis key, so "result readable" is
measured the same way for all of them, straight at the source:

- throughput runs poll `EXISTS k1 k2 ...` over the not-yet-seen keys, oldest first, in chunks
  (SAQ, whose job key exists from enqueue on: `ZMSCORE` of its `incomplete` set, which the
  result's transaction leaves);
- latency runs subscribe to Redis keyspace events (`notify-keyspace-events E$l`) for the
  commands that write results (`SET` for taskiq, taskjet, Celery and streaq, `LPUSH` for
  Dramatiq, the `expire` of SAQ's `SETEX`) and note the arrival time of each key: no polling
  interval distorts the figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

from redis.asyncio import Redis

CHUNK = 200
POLL_S = 0.004


Counter = Callable[[Redis, Sequence[bytes]], Awaitable[int]]


async def count_existing(redis: Redis, keys: Sequence[bytes]) -> int:
    return int(await redis.exists(*keys))


class ResultWatcher:
    """Waits until a set of tasks all have a readable result (by default: their keys exist)."""

    def __init__(self, redis_url: str, count_done: Counter = count_existing) -> None:
        self.redis: Redis = Redis.from_url(redis_url)
        self.count_done = count_done

    async def close(self) -> None:
        await self.redis.aclose()

    async def wait_all(self, keys: Sequence[bytes], timeout_s: float) -> float | None:
        """`perf_counter()` when the last key was seen, or None after `timeout_s`."""
        deadline = time.perf_counter() + timeout_s
        start = 0
        while start < len(keys):
            part = keys[start : start + CHUNK]
            if await self.count_done(self.redis, part) == len(part):
                start += CHUNK
                continue
            if time.perf_counter() > deadline:
                return None
            await asyncio.sleep(POLL_S)
        return time.perf_counter()

    async def count(self, keys: Sequence[bytes]) -> int:
        total = 0
        for start in range(0, len(keys), 1000):
            total += await self.count_done(self.redis, keys[start : start + 1000])
        return total


class KeyEvents:
    """First arrival time (perf_counter) of each key written by the given Redis commands."""

    def __init__(
        self, redis_url: str, db: int, events: Sequence[str], classes: str = "E$l"
    ) -> None:
        self.redis: Redis = Redis.from_url(redis_url)
        self.classes = classes
        self.channels = [f"__keyevent@{db}__:{event}" for event in events]
        self.seen: dict[bytes, float] = {}
        self._reader: asyncio.Task[None] | None = None
        self._pubsub = self.redis.pubsub()

    async def __aenter__(self) -> KeyEvents:
        await self.redis.config_set("notify-keyspace-events", self.classes)
        await self._pubsub.subscribe(*self.channels)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.unsubscribe()
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self.redis.config_set("notify-keyspace-events", "")
        await self.redis.aclose()

    async def _read(self) -> None:
        seen = self.seen
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "message":
                seen.setdefault(message["data"], time.perf_counter())

    def clear(self) -> None:
        self.seen.clear()


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan
