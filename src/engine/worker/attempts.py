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

    async def bump(self, task_id: str, counter: Counter) -> int:
        """Add one to `counter` and return the new value."""
        key = self._layout().attempts_key(task_id)
        async with self._redis().pipeline(transaction=False) as pipe:
            pipe.hincrby(key, counter, 1)
            pipe.expire(key, self._ttl_s())
            value, _ = await pipe.execute()
        return int(value)

    async def take_back_starts(self, task_ids: list[str]) -> None:
        """One start less for each task, in one round trip: starts that never ran."""
        ttl_s, layout = self._ttl_s(), self._layout()
        async with self._redis().pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                key = layout.attempts_key(task_id)
                pipe.hincrby(key, "starts", -1)
                pipe.expire(key, ttl_s)
            await pipe.execute()
