"""How often a task started and failed, counted in Redis across every worker.

Written only off the happy path (a redelivery, a failure), so a task that runs once and
succeeds never pays for it. A new dispatch of the task id clears the counters (see
`state/transitions.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from redis.asyncio import Redis

from src.engine.core.layout import Layout

Counter = Literal["starts", "failures"]


class AttemptCounter:
    def __init__(
        self, redis: Callable[[], Redis], layout: Callable[[], Layout], ttl_s: Callable[[], int]
    ) -> None:
        self._redis = redis
        self._layout = layout
        self._ttl_s = ttl_s

    async def bump(self, task_id: str, counter: Counter, by: int = 1) -> int:
        """Add `by` to `counter` and return the new value."""
        key = self._layout().attempts_key(task_id)
        async with self._redis().pipeline(transaction=False) as pipe:
            pipe.hincrby(key, counter, by)
            pipe.expire(key, self._ttl_s())
            value, _ = await pipe.execute()
        return int(value)
